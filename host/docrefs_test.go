package host

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoReferencesOutsideTheRepo fails when a file of the repository points at design documents
// that no clone has: the project's own are docs/architecture.md and docs/methodology.md.
func TestNoReferencesOutsideTheRepo(t *testing.T) {
	// Spelled in pieces so that this file does not match itself.
	forbidden := []string{"shared" + "/design", "../" + "shared", "ARCHITECTURE" + ".md", "METHODOLOGY" + ".md", "STYLE" + ".md"}
	root := ".."
	var files []string
	for _, top := range []string{"README.md", "Makefile", "docs", "host", "sdk", "plugins", "cmd", "examples", "scripts"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if name := d.Name(); name == "testdata" || name == "third_party" || name == "node_modules" {
					return filepath.SkipDir
				}
				return nil
			}
			switch filepath.Ext(path) {
			case ".go", ".md", ".toml", ".sh", ".proto", "":
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(files) < 100 {
		t.Fatalf("found only %d files to check from %s: is the test running in host/?", len(files), root)
	}
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, f := range forbidden {
				if strings.Contains(line, f) {
					t.Errorf("%s:%d names %q, which is not in the repository; refer to docs/architecture.md or docs/methodology.md", path, i+1, f)
				}
			}
		}
	}
	for _, doc := range []string{"docs/architecture.md", "docs/methodology.md"} {
		if _, err := os.Stat(filepath.Join(root, doc)); err != nil {
			t.Errorf("%s: %v", doc, err)
		}
	}
}
