// Package thirdparty says where `make setup` put what the plugins read at run time (ONNX
// Runtime, the GPT-2 vocabulary), so that every plugin looks in the same places. It is pure Go
// and imports nothing of lemctl; it must never download or write anything.
package thirdparty

import (
	"os"
	"path/filepath"
)

// Env names the `make setup` folder (ONNX Runtime and the GPT-2 vocabulary); the
// Makefile exports it to tests.
const Env = "LEM_THIRD_PARTY"

// Dirs lists the set-up folders to look in, in order: $LEM_THIRD_PARTY, then <dir of this
// executable>/../../third_party (plugin binaries live in <repo>/bin/plugins/).
func Dirs() []string {
	var dirs []string
	if d := os.Getenv(Env); d != "" {
		dirs = append(dirs, d)
	}
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		dirs = append(dirs, filepath.Join(filepath.Dir(exe), "..", "..", "third_party"))
	}
	return dirs
}
