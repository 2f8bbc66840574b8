package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestExamplesValidateAgainstTheProductPlugins validates examples/*.toml with the real plugins
// that `make build` put in $LEM_BIN/plugins: every plugin table is checked by its plugin.
func TestExamplesValidateAgainstTheProductPlugins(t *testing.T) {
	bin := os.Getenv("LEM_BIN")
	if bin == "" {
		t.Skip("set LEM_BIN to a `make build` output (make test does)")
	}
	files, _ := filepath.Glob(filepath.Join(repoRoot, "examples", "*.toml"))
	if len(files) < 3 {
		t.Fatalf("examples: %v", files)
	}
	args := append([]string{"config", "validate", "--plugin-dir", filepath.Join(bin, "plugins")}, files...)
	r := lemctl(t, nil, args...)
	if code := r.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("config validate exited %d\n%s\n%s", code, r.stdout.String(), r.stderr.String())
	}
	for _, f := range files {
		if !strings.Contains(r.stdout.String(), filepath.Base(f)+": valid") {
			t.Errorf("%s not reported valid:\n%s", f, r.stdout.String())
		}
	}
}

// TestDocsTOMLExamplesValidate checks every ```toml block of docs/*.md with the real plugins: a
// block that is not a whole experiment (no [model] table) is checked below a minimal one, so a
// documented table or key that lemctl would reject fails here.
func TestDocsTOMLExamplesValidate(t *testing.T) {
	dir := productPlugins(t, "onnx", "fsstore", "nvml", "rapl")
	docs, _ := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	tmp := t.TempDir()
	var files []string
	for _, doc := range docs {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(string(b), "```toml\n")
		for i, p := range parts[1:] {
			block, _, ok := strings.Cut(p, "```")
			if !ok {
				t.Fatalf("%s: unterminated toml block %d", doc, i+1)
			}
			if !strings.Contains(block, "[model]") {
				block = "[model]\nref = \"synthetic:gpt2-tiny\"\n\n" + block
			}
			f := filepath.Join(tmp, fmt.Sprintf("%s-%d.toml", strings.TrimSuffix(filepath.Base(doc), ".md"), i+1))
			if err := os.WriteFile(f, []byte(block), 0o644); err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
	}
	if !slices.ContainsFunc(files, func(f string) bool { return strings.Contains(f, "models-") }) {
		t.Fatalf("docs/models.md has no toml example of the onnx plugin's table (files: %v)", files)
	}
	r := lemctl(t, nil, append([]string{"config", "validate", "--plugin-dir", dir}, files...)...)
	if code := r.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("config validate of the docs' toml examples exited %d\n%s\n%s", code, r.stdout.String(), r.stderr.String())
	}
}
