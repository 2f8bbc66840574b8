package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestProductPluginsAreListedWithTheirKinds checks `lemctl plugins list` on bin/plugins: the
// product plugins, each with the kinds its issue gives it.
func TestProductPluginsAreListedWithTheirKinds(t *testing.T) {
	bin := os.Getenv("LEM_BIN")
	if bin == "" {
		t.Skip("set LEM_BIN to a `make build` output (make test does)")
	}
	r := lemctl(t, nil, "plugins", "list", "--output", "json", "--plugin-dir", filepath.Join(bin, "plugins"))
	if code := r.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("plugins list exited %d\n%s", code, r.stderr.String())
	}
	var out struct {
		Plugins []struct {
			Name      string   `json:"name"`
			Kinds     []string `json:"kinds"`
			Available bool     `json:"available"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(r.stdout.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"onnx": {"loader", "engine"}, "openai": {"loader", "engine"}, "nvml": {"energy"}, "rapl": {"energy"}, "fsstore": {"repository"}}
	for _, p := range out.Plugins {
		kinds, ok := want[p.Name]
		if !ok {
			continue
		}
		delete(want, p.Name)
		for _, k := range kinds {
			if !slices.Contains(p.Kinds, k) {
				t.Errorf("plugin %s lists kinds %v, want %v", p.Name, p.Kinds, kinds)
			}
		}
		if !p.Available {
			t.Errorf("plugin %s is not available", p.Name)
		}
	}
	for name := range want {
		t.Errorf("plugin %s is not listed", name)
	}
}
