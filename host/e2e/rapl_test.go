package e2e

import (
	"bufio"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lemctl/lemctl/host/results"
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
//
// Under CPU load the fake is starved: its files hold an old value, then catch up in one jump.
// The meter must take such a catch-up for what it is (not a counter reset), and power × window is
// then true only to within 40 W × the fake's longest staleness, which the fake reports on exit.
// Should a reset still be reported, the test checks what the product says about it instead: the
// raw result is invalid with counter_reset on the package, and the energy is short by no more than
// the bound the finding states.
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
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
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
	stale := stopFakePowercap(t, f, out)

	const watts = 40.0
	const sample = 0.020 * watts // one 20 ms sample at 40 W, in J
	tol := 2*sample + watts*stale.Seconds()
	// check compares a package energy with 40 W × seconds; lost is what reported resets say the
	// total may lack.
	check := func(what string, got *float64, seconds, lost float64) {
		t.Helper()
		want := watts * seconds
		switch {
		case got == nil:
			t.Errorf("%s: package energy missing", what)
		case *got > want+tol || *got < want-tol-lost:
			t.Errorf("%s: package %.3f J over %.3f s, want 40 W × %.3f s = %.3f J, +%.3f J/−%.3f J (fake stale up to %v, resets lose up to %.3f J)",
				what, *got, seconds, seconds, want, tol, tol+lost, stale, lost)
		}
	}

	exp := experimentID(t, res)
	allLost := 0.0
	for rank := 0; rank < 2; rank++ {
		raw := readRaw(t, res, exp, rank)
		for _, d := range raw.Energy.Domains {
			if d.Kind != "package" {
				continue
			}
			lost := 0.0
			for _, h := range d.Health {
				if h.Code == "counter_reset" {
					lost += lostBound(t, h.Message)
					t.Logf("rank %d: reported %s (%s): %s; fake stale up to %v", rank, h.Code, h.Severity, h.Message, stale)
					if h.Severity != results.SeverityError || raw.Validity.Valid {
						t.Errorf("rank %d: counter_reset %s with valid=%v, want an error that invalidates the result", rank, h.Severity, raw.Validity.Valid)
					}
				}
			}
			allLost += lost
			check(fmt.Sprintf("rank %d", rank), d.TotalJ, raw.Window.DurationS, lost)
		}
	}
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
	// Once over the union, not 80 W × union.
	check("aggregate", pkg, *agg.Window.UnionS, allLost)
}

// lostBound reads the energy a counter_reset finding says the total may lack ("the total lacks at
// most 6.6 J (…)"), in joules.
func lostBound(t *testing.T, msg string) float64 {
	t.Helper()
	m := regexp.MustCompile(`lacks at most ([0-9.e+-]+) (kJ|J|mJ|µJ) `).FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("counter_reset without a bound on the energy it lost: %q", msg)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v * map[string]float64{"kJ": 1e3, "J": 1, "mJ": 1e-3, "µJ": 1e-6}[m[2]]
}

// stopFakePowercap stops a fake-powercap started by a test and returns the longest time its
// files stood stale, which it prints on exit.
func stopFakePowercap(t *testing.T, f *exec.Cmd, out *bufio.Reader) time.Duration {
	t.Helper()
	if err := f.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	line, err := out.ReadString('\n')
	ns, perr := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(line, "max_stale_ns=")), 10, 64)
	if err != nil || !strings.HasPrefix(line, "max_stale_ns=") || perr != nil {
		t.Fatalf("fake-powercap did not report its staleness: %q %v", line, err)
	}
	return time.Duration(ns)
}
