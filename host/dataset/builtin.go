package dataset

import (
	"embed"
	"fmt"
)

//go:embed builtin/prompts-v1.jsonl
var builtinFS embed.FS

// DefaultBuiltin is the name of the built-in prompt set.
const DefaultBuiltin = "builtin"

// BuiltinSet is a prompt set embedded in lemctl.
type BuiltinSet struct {
	Name        string
	Version     string
	Description string
	// SHA256 is the recorded hash of the embedded file; a test proves the bytes match it, so a
	// changed prompt set must get a new version.
	SHA256 string
	// Count is the recorded number of prompts; the same test proves it.
	Count int
	file  string
	data  []byte
}

// Data returns the set's bytes (JSONL records {id, task, prompt}).
func (b *BuiltinSet) Data() []byte { return b.data }

var builtins = []*BuiltinSet{{
	Name:    DefaultBuiltin,
	Version: "1",
	Description: "prompts written for lemctl: summarise, explain, code, translate, reason, creative, extract, " +
		"classify, Q&A, rewrite, plan and chat tasks, from a few words to several paragraphs",
	SHA256: "a4a50c1a32fa2db3386668a283c879883fb2a6ed2e83d4ccfe5ae118d8c3f13a",
	Count:  218,
	file:   "builtin/prompts-v1.jsonl",
}}

func init() {
	for _, b := range builtins {
		data, err := builtinFS.ReadFile(b.file)
		if err != nil {
			panic(fmt.Sprintf("dataset: embedded %s: %v", b.file, err))
		}
		b.data = data
	}
}

// Builtins lists the built-in prompt sets.
func Builtins() []*BuiltinSet { return builtins }

// Builtin returns the built-in set of that name, or nil.
func Builtin(name string) *BuiltinSet {
	for _, b := range builtins {
		if b.Name == name {
			return b
		}
	}
	return nil
}
