package e2e

import (
	"bufio"
	"math"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// raplBinaries returns a plugin directory holding lem-plugin-rapl and the fake-powercap tool,
// built from plugins/rapl (or rapl taken from $LEM_BIN/plugins).
func raplBinaries(t *testing.T) (pluginDir, fake string) {
	t.Helper()
	pluginDir = installProductPlugin(t, "rapl")
	dir := t.TempDir()
	mod := filepath.Join(repoRoot, "plugins", "rapl")
	fake = filepath.Join(dir, "fake-powercap")
	if err := gobuild(mod, "./cmd/fake-powercap", fake); err != nil {
		t.Fatal(err)
	}
	return pluginDir, fake
}

// TestRunTwoWorkersShareOneRAPLPackage runs two CPU workers against a fake powercap tree whose
// package counter advances at 40 W: both workers report the package domain, and the aggregate
// counts it once over the union of their windows — 40 W × union, not twice that.
func TestRunTwoWorkersShareOneRAPLPackage(t *testing.T) {
	raplDir, fake := raplBinaries(t)
	root := t.TempDir()
	f := exec.Command(fake, "-root", root, "-zone", "intel-rapl:0=package-0,40,262143328850,200000000")
	stdout, err := f.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Process.Kill(); _ = f.Wait() })
	// Wait until the tree exists (the tool prints start_mono_ns=… once it is written).
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "start_mono_ns=") {
		t.Fatalf("fake-powercap did not start: %q %v", line, err)
	}
	meter := `
[energy]
meters = ["rapl"]

[energy.rapl]
sysfs_root = "` + root + `"
interval = "20ms"
`
	cfg := strings.Replace(experiment("rapl", 2, meter), "min_window_s = 0", "min_window_s = 2", 1)
	r, res := runExperiment(t, cfg, nil, "--plugin-dir", raplDir)
	if r.code != 0 {
		t.Fatalf("run exited %d\nstderr:\n%s", r.code, r.stderr.String())
	}
	exp := experimentID(t, res)
	agg := readAggregated(t, res, exp)
	var pkg *float64
	for _, d := range agg.Energy.Domains {
		if d.Kind == "package" {
			pkg = d.TotalJ
			if len(d.Ranks) != 2 {
				t.Errorf("package domain seen by ranks %v, want both", d.Ranks)
			}
		}
	}
	union := *agg.Window.UnionS
	const sample = 0.020 * 40 // one 20 ms sample at 40 W, in J
	if pkg == nil || math.Abs(*pkg-40*union) > 2*sample {
		t.Errorf("package energy %v J over a %.3f s union, want 40 W × union = %.3f J (once, not %.3f J)", deref(pkg), union, 40*union, 80*union)
	}
	for rank := 0; rank < 2; rank++ {
		raw := readRaw(t, res, exp, rank)
		for _, d := range raw.Energy.Domains {
			if d.Kind == "package" && (d.TotalJ == nil || math.Abs(*d.TotalJ-40*raw.Window.DurationS) > 2*sample) {
				t.Errorf("rank %d: package %v J over %.3f s, want 40 W", rank, deref(d.TotalJ), raw.Window.DurationS)
			}
		}
	}
}
