package worker

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lemctl/lemctl/host/launch"
	"github.com/lemctl/lemctl/host/results/resultstest"
	"github.com/lemctl/lemctl/sdk"
)

// parentResolution is a resolution of fake-model on boot, over one model file in a temp dir.
func parentResolution(t *testing.T, boot string) (*launch.ResolvedModel, string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "model.bin")
	if err := os.WriteFile(f, []byte("weights"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := sdk.Artifact{Reference: "fake-model", Path: f, Files: []string{f}, Format: "fake", SHA256: strings.Repeat("cd", 32),
		Parameters: 1000, FLOPs: sdk.FLOPsCoefficients{PerToken: 2000}, ContextLength: 1024, BOSTokenID: -1, PadTokenID: -1}
	r, err := launch.NewResolvedModel(a, boot)
	if err != nil {
		t.Fatal(err)
	}
	return r, f
}

// TestWorkerUsesTheParentsResolutionOnTheSameBoot: a worker on the boot the parent resolved the
// model on, with the model's files unchanged, does not ask the loader again and records the
// parent's hash; on another boot, or once a file changed, it resolves the model itself.
func TestWorkerUsesTheParentsResolutionOnTheSameBoot(t *testing.T) {
	cases := []struct {
		name        string
		boot        string
		touch       bool
		wantResolve bool
		wantSHA     string
	}{
		{"same boot, files unchanged", "boot-1", false, false, strings.Repeat("cd", 32)},
		{"another boot", "boot-2", false, true, strings.Repeat("ab", 32)},
		{"a file changed", "boot-1", true, true, strings.Repeat("ab", 32)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, 0, resultstest.NewMemory())
			res, f := parentResolution(t, c.boot)
			if c.touch {
				later := time.Now().Add(time.Hour)
				if err := os.Chtimes(f, later, later); err != nil {
					t.Fatal(err)
				}
			}
			r.spec.Model.Resolved = res
			if err := r.run(context.Background()); err != nil {
				t.Fatal(err)
			}
			resolved := slices.Contains(r.rec.list(), "loader.Resolve fake-model")
			if resolved != c.wantResolve {
				t.Errorf("loader.Resolve called: %v, want %v (calls %v)", resolved, c.wantResolve, r.rec.list())
			}
			if got := r.saved().Model.SHA256; got != c.wantSHA {
				t.Errorf("model sha256 %s, want %s", got, c.wantSHA)
			}
		})
	}
}
