package config

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated key reference in docs/config.md")

const (
	docsPath  = "../../docs/config.md"
	docsBegin = "<!-- BEGIN KEYS: generated from host/config/schema.go by `go test ./host/config -run TestDocsMatchSchema -update`; do not edit -->"
	docsEnd   = "<!-- END KEYS -->"
)

// keyReference renders one entry per schema key: type, default, valid values, meaning.
func keyReference() string {
	var b strings.Builder
	section := ""
	for i := range schema {
		k := &schema[i]
		sec := "top level"
		if len(k.path) > 1 {
			sec = "[" + strings.Join(k.path[:len(k.path)-1], ".") + "]"
		}
		if sec != section {
			section = sec
			fmt.Fprintf(&b, "\n## %s\n", sec)
		}
		fmt.Fprintf(&b, "\n### `%s`\n\n", displayPath(k.path...))
		def := k.defDoc
		switch {
		case k.required:
			def = "none — required"
		case def == "":
			def = "`" + tomlLiteral(k.def) + "`"
		}
		fmt.Fprintf(&b, "- type: %s\n- default: %s\n- valid: %s\n\n%s\n", kindName(k.kind), def, k.validDoc(), k.doc)
	}
	return b.String()
}

func kindName(k kind) string {
	return map[kind]string{kString: "string", kInt: "integer", kFloat: "number (an integer is accepted)", kBool: "boolean",
		kDuration: "duration string", kDevices: `"cpu" or array`, kMeters: `"auto" or array of strings`}[k]
}

func tomlLiteral(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}

// TestDocsMatchSchema keeps docs/config.md's key reference identical to the schema.
func TestDocsMatchSchema(t *testing.T) {
	data, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	i, j := strings.Index(doc, docsBegin), strings.Index(doc, docsEnd)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the markers %q … %q", docsPath, docsBegin, docsEnd)
	}
	want := docsBegin + "\n" + keyReference() + "\n" + docsEnd
	got := doc[i : j+len(docsEnd)]
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile(docsPath, []byte(doc[:i]+want+doc[j+len(docsEnd):]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s is out of date with schema.go; run go test ./host/config -run TestDocsMatchSchema -update", docsPath)
}
