package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/hostclient"
)

// These tests run the meter the way the host does: the binary built with `go build`, started by
// hostclient.Open, spoken to over real gRPC with AutoMTLS.

var (
	binDir   string
	buildMu  sync.Mutex
	binPath  string
	buildErr error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "example-meter-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// pluginBinary builds lem-plugin-example-meter once per test binary.
func pluginBinary(t *testing.T) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if binPath == "" && buildErr == nil {
		gobin, err := exec.LookPath("go") // `go test` puts its own go first on PATH
		if err != nil {
			buildErr = fmt.Errorf("find the go command: %w", err)
		} else {
			out := filepath.Join(binDir, "lem-plugin-example-meter")
			cmd := exec.Command(gobin, "build", "-o", out, ".")
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if msg, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build: %v\n%s", err, msg)
			} else {
				binPath = out
			}
		}
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// openMeter starts a meter process configured with table.
func openMeter(t *testing.T, table map[string]any) sdk.Meter {
	t.Helper()
	bin := pluginBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := hostclient.Open(ctx, bin, hostclient.WithStartTimeout(30*time.Second))
	if err != nil {
		t.Fatalf("open plugin: %v", err)
	}
	t.Cleanup(c.Close)
	if info := c.Info(); info.Name != pluginName || !info.Serves(sdk.KindEnergy) {
		t.Fatalf("info %+v", info)
	}
	if errs, err := c.Configure(ctx, table); err != nil || len(errs) > 0 {
		t.Fatalf("configure %v: %v %v", table, errs, err)
	}
	return c.Meter()
}

// measure runs one session of about d and returns its measurement.
func measure(t *testing.T, m sdk.Meter, label string, d time.Duration) *sdk.Measurement {
	t.Helper()
	ctx := context.Background()
	sess, err := m.Start(ctx, sdk.StartRequest{Label: label})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	time.Sleep(d)
	meas, err := m.Stop(ctx, sess.ID)
	if err != nil {
		t.Fatalf("stop: %v", err)
	}
	if len(meas.Domains) != 1 || !meas.Domains[0].Domain.Available || len(meas.Domains[0].Samples) < 2 {
		t.Fatalf("measurement domains %+v", meas.Domains)
	}
	return meas
}

// checkEnergy asserts that a session's energy is watts × (stop − start) within one update period
// of that power. The sampler stamps StopMonoNS just after the last counter read; the energy of
// that tiny lag is known exactly (the test adds it to the bound) and is never more than a few µs.
func checkEnergy(t *testing.T, meas *sdk.Measurement, watts float64, update time.Duration) {
	t.Helper()
	d := meas.Domains[0]
	last := d.Samples[len(d.Samples)-1]
	if last.MonoNS > meas.StopMonoNS || d.Samples[0].MonoNS != meas.StartMonoNS {
		t.Fatalf("samples [%d, %d] outside the session [%d, %d]", d.Samples[0].MonoNS, last.MonoNS, meas.StartMonoNS, meas.StopMonoNS)
	}
	window := time.Duration(meas.StopMonoNS - meas.StartMonoNS)
	want := watts * window.Seconds()
	bound := watts * (update.Seconds() + time.Duration(meas.StopMonoNS-last.MonoNS).Seconds())
	if got := d.Energy.Joules(); math.Abs(got-want) > bound+1e-6 {
		t.Errorf("energy %.6f J over %s, want %g W × window = %.6f J ± %.6f J", got, window, watts, want, bound)
	}
}

func TestProcessEnergyIsPowerTimesWindow(t *testing.T) {
	t.Parallel()
	m := openMeter(t, map[string]any{})
	meas := measure(t, m, "", 2*time.Second)
	checkEnergy(t, meas, 150, 10*time.Millisecond)
	window := time.Duration(meas.StopMonoNS - meas.StartMonoNS)
	// The session spans the 2 s sleep between the Start and Stop calls, plus their latency
	// (unbounded on a loaded machine, so only the lower bound is certain).
	if window < 2*time.Second {
		t.Errorf("window %s, want at least the 2 s between Start and Stop", window)
	}
	if j := meas.Domains[0].Energy.Joules(); j < 300-1.5 {
		t.Errorf("energy %.3f J, want at least 300 J less one update period at 150 W", j)
	}
	// The counter steps every 10 ms of the absolute clock, so two readings at least two update
	// periods apart straddle a step. How many readings the sampler took depends on the load;
	// the updates it reports must account for every such pair it did take.
	d := meas.Domains[0]
	straddling := 0
	for i := 1; i < len(d.Samples); i++ {
		if time.Duration(d.Samples[i].MonoNS-d.Samples[i-1].MonoNS) >= 20*time.Millisecond {
			straddling++
		}
	}
	if d.CounterUpdates < max(straddling, 1) {
		t.Errorf("%d counter updates reported over %d samples, %d of them two update periods apart", d.CounterUpdates, len(d.Samples), straddling)
	}
}

func TestProcessBaselineLabelGivesIdlePower(t *testing.T) {
	t.Parallel()
	m := openMeter(t, map[string]any{"idle_power_w": 40.0, "update_period": "20ms"})
	checkEnergy(t, measure(t, m, baselineLabel, 500*time.Millisecond), 40, 20*time.Millisecond)
	checkEnergy(t, measure(t, m, "measured", 500*time.Millisecond), 150, 20*time.Millisecond)
}

// TestProcessTwoClientsAgree runs two meter processes over overlapping windows. Their counters
// are the same function of the absolute clock, so readings that fall in the same update period
// are the same counter value: the energy between two such periods is identical for both, to the
// microjoule. Energy over the overlap interpolated from each timeline also agrees.
func TestProcessTwoClientsAgree(t *testing.T) {
	t.Parallel()
	const update = 10 * time.Millisecond
	table := map[string]any{"interval": "3ms"}
	a, b := openMeter(t, table), openMeter(t, table)
	ctx := context.Background()
	sa, err := a.Start(ctx, sdk.StartRequest{})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	sb, err := b.Start(ctx, sdk.StartRequest{})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(800 * time.Millisecond)
	ma, err := a.Stop(ctx, sa.ID)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	mb, err := b.Stop(ctx, sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	from, to := max(ma.StartMonoNS, mb.StartMonoNS), min(ma.StopMonoNS, mb.StopMonoNS)
	if time.Duration(to-from) < 700*time.Millisecond {
		t.Fatalf("overlap [%d, %d] is too short", from, to)
	}
	da, db := ma.Domains[0].Samples, mb.Domains[0].Samples

	// Exact agreement between shared update periods near both ends of the overlap.
	pa, pb := byPeriod(da, update), byPeriod(db, update)
	var shared []int64
	for q := range pa {
		if _, ok := pb[q]; ok {
			shared = append(shared, q)
		}
	}
	sort.Slice(shared, func(i, j int) bool { return shared[i] < shared[j] })
	if len(shared) < 20 {
		t.Fatalf("only %d update periods read by both clients", len(shared))
	}
	q1, q2 := shared[0], shared[len(shared)-1]
	ea := pa[q2] - pa[q1]
	eb := pb[q2] - pb[q1]
	if ea != eb {
		t.Errorf("energy between update periods %d and %d: client A %d µJ, client B %d µJ", q1, q2, ea, eb)
	}
	if want := uint64(150_000_000 * (q2 - q1) * int64(update) / int64(time.Second)); ea != want {
		t.Errorf("energy between update periods %d and %d: %d µJ, want %d", q1, q2, ea, want)
	}

	// Interpolated energy of the overlap window, as the host's aggregation computes it.
	ja, jb := interp(da, to)-interp(da, from), interp(db, to)-interp(db, from)
	if tol := 2 * 150 * update.Seconds(); math.Abs(ja-jb) > tol {
		t.Errorf("overlap energy: client A %.4f J, client B %.4f J, want within %.2f J", ja, jb, tol)
	}
}

// byPeriod maps each update period that has a sample to the cumulative energy (µJ) read in it.
func byPeriod(samples []sdk.Sample, update time.Duration) map[int64]uint64 {
	out := map[int64]uint64{}
	for _, s := range samples {
		out[s.MonoNS/int64(update)] = uint64(s.Energy)
	}
	return out
}

// interp returns the cumulative energy in joules at t, interpolated linearly between samples.
func interp(samples []sdk.Sample, t int64) float64 {
	for i := 1; i < len(samples); i++ {
		a, b := samples[i-1], samples[i]
		if t <= b.MonoNS {
			if b.MonoNS == a.MonoNS {
				return b.Energy.Joules()
			}
			f := float64(t-a.MonoNS) / float64(b.MonoNS-a.MonoNS)
			return a.Energy.Joules() + f*(b.Energy.Joules()-a.Energy.Joules())
		}
	}
	return samples[len(samples)-1].Energy.Joules()
}

func TestProcessBurnShare(t *testing.T) {
	t.Parallel()
	m := openMeter(t, map[string]any{"burn_share": 0.05})
	meas := measure(t, m, "", 2*time.Second)
	window := time.Duration(meas.StopMonoNS - meas.StartMonoNS)
	share := float64(meas.SamplerCPUNS) / float64(window)
	if math.Abs(share-0.05) > 0.02 {
		t.Errorf("plugin CPU %s over %s = %.4f of a core, want 0.05 ± 0.02", time.Duration(meas.SamplerCPUNS), window, share)
	}
	t.Logf("plugin CPU %s over %s = %.4f of a core", time.Duration(meas.SamplerCPUNS), window, share)
}

// The plugin always runs in a process group of its own, out of reach of a signal to the host's
// group.
func TestOwnProcessGroup(t *testing.T) {
	bin := pluginBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mine, err := syscall.Getpgid(0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := hostclient.Open(ctx, bin, hostclient.WithStartTimeout(30*time.Second))
	if err != nil {
		t.Fatalf("open plugin: %v", err)
	}
	pg, err := syscall.Getpgid(c.Pid())
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	if pg == mine || pg != c.Pid() {
		t.Errorf("plugin %d in group %d (ours %d), want its own", c.Pid(), pg, mine)
	}
}
