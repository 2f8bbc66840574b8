package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMeasureMeterNamesTheCause: `measure --meter X` on an installed plugin that cannot be used
// says why (not "not installed"), and a meter that panics inside a call shows its panic line.
func TestMeasureMeterNamesTheCause(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "plugins")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "badplugin")
	if err := gobuild(repoRoot, "./host/discovery/internal/badplugin", bad); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"crash", "good-loader", "panicstart"} {
		if err := copyFile(bad, filepath.Join(dir, "lem-plugin-"+name)); err != nil {
			t.Fatal(err)
		}
	}
	spec := filepath.Join(t.TempDir(), "spec.json")
	if err := os.WriteFile(spec, []byte(`{"good-loader": {"kinds": ["loader"]}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"LEM_TEST_PLUGIN_SPEC=" + spec}
	for _, tc := range []struct {
		meter string
		code  int
		want  []string
	}{
		{"crash", 2, []string{"unusable", "simulated crash at start"}},
		{"good-loader", 2, []string{"serves loader, not energy"}},
		{"panicstart", 1, []string{"died", "panic: badplugin: simulated panic in Start"}},
	} {
		r := lemctl(t, env, "measure", "--plugin-dir", dir, "--meter", tc.meter, "--", "true")
		code := r.wait(t, 2*time.Minute)
		errOut := r.stderr.String()
		last := errOut[strings.LastIndex(strings.TrimSpace(errOut), "\nlemctl: ")+1:]
		if code != tc.code {
			t.Errorf("--meter %s: exit %d, want %d\n%s", tc.meter, code, tc.code, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(last, w) {
				t.Errorf("--meter %s: error %q does not contain %q", tc.meter, last, w)
			}
		}
		if strings.Contains(last, "not installed (searched") {
			t.Errorf("--meter %s: says only that it is not installed: %q", tc.meter, last)
		}
	}
}
