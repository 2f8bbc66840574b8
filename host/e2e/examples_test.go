package e2e

import (
	"os"
	"path/filepath"
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
