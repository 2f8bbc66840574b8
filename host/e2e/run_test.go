package e2e

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// experiment builds a config on the example plugins.
func experiment(name string, workers int, extra string) string {
	return `name = "` + name + `"

[model]
plugin = "example-loader"
ref = "example:tiny"

[engine]
plugin = "example-engine"

[workload]
dataset = "builtin"
prompts = 16
batch_size = 4
max_new_tokens = 8
min_window_s = 0

[workload.decoding]
ignore_eos = true

[launch]
devices = "cpu"
processes_per_device = ` + strconv.Itoa(workers) + `

[lifecycle]
baseline_s = 0

[lifecycle.warmup]
mode = "fixed"
batches = 1

[repository]
plugin = "fsstore"
` + extra
}

const noMeters = `
[energy]
meters = []
`

func TestRunCountsTokensExactlyAndPartitionsPrompts(t *testing.T) {
	r, res := runExperiment(t, experiment("tokens", 2, noMeters), nil)
	if r.code != 0 {
		t.Fatalf("run exited %d\nstderr:\n%s", r.code, r.stderr.String())
	}
	exp := experimentID(t, res)
	agg := readAggregated(t, res, exp)
	if agg.Workload.Requests != 16 || agg.Workload.OutputTokens != 16*8 {
		t.Errorf("aggregate: %d requests, %d output tokens; want 16 and %d", agg.Workload.Requests, agg.Workload.OutputTokens, 16*8)
	}
	for _, raw := range checkTwoRankPartition(t, res, exp, agg) {
		for _, q := range raw.Requests {
			if q.OutputTokens != 8 || len(q.TokenMonoNS) != 8 {
				t.Errorf("rank %d request %s: %d output tokens, %d times; want 8 (EOS ignored)", raw.Rank, q.ID, q.OutputTokens, len(q.TokenMonoNS))
			}
			if q.TokenMonoNS[0] < q.StartMonoNS {
				t.Errorf("request %s: first token before the request started", q.ID)
			}
		}
	}
	if !strings.Contains(r.stdout.String(), "experiment "+exp) {
		t.Errorf("summary does not name the experiment:\n%s", r.stdout.String())
	}
}

func TestRunEnergyMatchesTheScriptedGroundTruth(t *testing.T) {
	// One node-scoped package domain seen by both workers: 100 W in the window, 20 W idle.
	meter := `
[energy]
meters = ["example-meter"]

[energy.example-meter]
domains = ["node-pkg:package:node"]
power_w = 100.0
idle_power_w = 20.0
update_period = "10ms"
interval = "20ms"
`
	cfg := strings.Replace(experiment("energy", 2, meter), "baseline_s = 0", "baseline_s = 1", 1)
	cfg = strings.Replace(cfg, "min_window_s = 0", "min_window_s = 2", 1)
	r, res := runExperiment(t, cfg, nil)
	if r.code != 0 {
		t.Fatalf("run exited %d\nstderr:\n%s", r.code, r.stderr.String())
	}
	exp := experimentID(t, res)
	agg := readAggregated(t, res, exp)
	if agg.Window.UnionS == nil || len(agg.Energy.Domains) != 1 {
		t.Fatalf("aggregate: union window %v, %d domains", agg.Window.UnionS, len(agg.Energy.Domains))
	}
	union := *agg.Window.UnionS
	d := agg.Energy.Domains[0]
	const tol = 0.010 * 100 // one update period × power, in J
	if d.TotalJ == nil || math.Abs(*d.TotalJ-100*union) > 2*tol {
		t.Errorf("package energy %v J, want 100 W × %.3f s = %.3f J (counted once, not once per worker)", deref(d.TotalJ), union, 100*union)
	}
	if d.StaticJ == nil || math.Abs(*d.StaticJ-20*union) > 2*tol {
		t.Errorf("static %v J, want 20 W × %.3f s = %.3f J", deref(d.StaticJ), union, 20*union)
	}
	if agg.Energy.TotalJ == nil || math.Abs(*agg.Energy.TotalJ-*d.TotalJ) > 1e-9 {
		t.Errorf("energy.total_j %v differs from the one counted domain %v", deref(agg.Energy.TotalJ), deref(d.TotalJ))
	}
	if got, want := agg.Energy.JPerOutputToken, *d.TotalJ/float64(agg.Workload.OutputTokens); got == nil || math.Abs(*got-want) > 1e-9 {
		t.Errorf("J/output token %v, want %v", deref(got), want)
	}
	for rank := 0; rank < 2; rank++ {
		raw := readRaw(t, res, exp, rank)
		rd := raw.Energy.Domains[0]
		if rd.TotalJ == nil || math.Abs(*rd.TotalJ-100*raw.Window.DurationS) > 2*tol {
			t.Errorf("rank %d: %v J over %.3f s, want 100 W", rank, deref(rd.TotalJ), raw.Window.DurationS)
		}
		if rd.IdlePowerW == nil || math.Abs(*rd.IdlePowerW-20) > 0.5 {
			t.Errorf("rank %d: idle power %v W, want 20 W", rank, deref(rd.IdlePowerW))
		}
	}
}

func TestRunOverheadShare(t *testing.T) {
	if testing.Short() {
		t.Skip("a 10 s window")
	}
	meter := `
[energy]
meters = ["example-meter"]

[energy.example-meter]
domains = ["pkg:package:node"]
burn_share = 0.05
`
	cfg := strings.Replace(experiment("overhead", 1, meter), "min_window_s = 0", "min_window_s = 10", 1)
	r, res := runExperiment(t, cfg, nil)
	if r.code != 0 {
		t.Fatalf("run exited %d\nstderr:\n%s", r.code, r.stderr.String())
	}
	raw := readRaw(t, res, experimentID(t, res), 0)
	if raw.Overhead.Share == nil || math.Abs(*raw.Overhead.Share-0.05) > 0.01 {
		t.Errorf("overhead share %v, want 0.05 ± 0.01 (meter CPU %v s over %.2f s)", deref(raw.Overhead.Share), deref(raw.Overhead.MeterCPUS), raw.Window.DurationS)
	}
}

func TestRunRepeats(t *testing.T) {
	cfg := strings.Replace(experiment("repeats", 1, noMeters), "min_window_s = 0", "min_window_s = 0\nrepeats = 3", 1)
	r, res := runExperiment(t, cfg, nil, "--progress", "json")
	if r.code != 0 {
		t.Fatalf("run exited %d\nstderr:\n%s", r.code, r.stderr.String())
	}
	// --progress json: the workers' progress as one JSON object per line on stderr.
	phases := map[string]bool{}
	for _, line := range strings.Split(r.stderr.String(), "\n") {
		var m struct {
			Type  string `json:"type"`
			Phase string `json:"phase"`
		}
		if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &m) == nil && m.Type == "progress" {
			phases[m.Phase] = true
		}
	}
	for _, want := range []string{"idle_baseline", "load", "warmup", "measured"} {
		if !phases[want] {
			t.Errorf("no JSON progress line for phase %s (got %v)", want, phases)
		}
	}
	exp := experimentID(t, res)
	raw := readRaw(t, res, exp, 0)
	if len(raw.Repeats) != 3 {
		t.Fatalf("raw has %d repeats, want 3", len(raw.Repeats))
	}
	agg := readAggregated(t, res, exp)
	st := agg.RepeatStats["output_tokens_per_s"]
	if len(agg.Repeats) != 3 || st == nil || st.N != 3 || st.Mean == nil || st.Std == nil || st.CI95Low == nil || st.CV == nil {
		t.Errorf("aggregate repeats %d, stats %+v", len(agg.Repeats), st)
	}
}

func TestWorkerKilledMidWindow(t *testing.T) {
	dir := t.TempDir()
	pause := filepath.Join(dir, "paused")
	cfg := filepath.Join(dir, "e.toml")
	if err := os.WriteFile(cfg, []byte(experiment("killed", 2, noMeters)), 0o644); err != nil {
		t.Fatal(err)
	}
	res := filepath.Join(dir, "results")
	r := lemctl(t, []string{"LEM_TEST_PAUSE=window:1:" + pause}, "run", cfg, "--plugin-dir", pluginDir, "--results-dir", res, "--progress", "quiet")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pid, err := waitFile(ctx, pause)
	if err != nil {
		r.cmd.Process.Kill()
		t.Fatalf("rank 1 never paused in the window: %v\n%s", err, r.stderr.String())
	}
	n, _ := strconv.Atoi(strings.TrimSpace(pid))
	// A dead worker stops the others (docs/reliability.md, "Dead workers"): kill rank 1 once
	// rank 0 has saved its result, which must stay.
	exp0 := experimentID(t, res)
	if _, err := waitFile(ctx, filepath.Join(res, "raw", exp0, ".completed_0")); err != nil {
		r.cmd.Process.Kill()
		t.Fatalf("rank 0 never completed: %v\n%s", err, r.stderr.String())
	}
	if err := syscall.Kill(n, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(t, time.Minute); code != 1 {
		t.Fatalf("run exited %d, want 1\nstderr:\n%s", code, r.stderr.String())
	}
	if !strings.Contains(r.stderr.String(), "rank 1") {
		t.Errorf("the failure does not name rank 1:\n%s", r.stderr.String())
	}
	exp := experimentID(t, res)
	raw := readRaw(t, res, exp, 0)
	if raw.Workload.Requests != 8 {
		t.Errorf("rank 0's raw result has %d requests, want 8", raw.Workload.Requests)
	}
	if _, err := os.Stat(filepath.Join(res, "raw", exp, ".completed_0")); err != nil {
		t.Errorf("rank 0 has no completion marker: %v", err)
	}
	if m := readManifest(t, res, exp); m.State != "failed" {
		t.Errorf("manifest state %q, want failed", m.State)
	}
	strict := lemctl(t, nil, "aggregate", exp, "--plugin-dir", pluginDir, "--results-dir", res)
	if code := strict.wait(t, time.Minute); code != 1 || !strings.Contains(strict.stderr.String(), "1") {
		t.Errorf("strict aggregate exited %d, want 1 naming rank 1:\n%s", code, strict.stderr.String())
	}
	partial := lemctl(t, nil, "aggregate", exp, "--no-strict", "--plugin-dir", pluginDir, "--results-dir", res)
	if code := partial.wait(t, time.Minute); code != 1 {
		t.Errorf("--no-strict aggregate exited %d, want 1 (partial)\n%s", code, partial.stderr.String())
	}
	agg := readAggregated(t, res, exp)
	if !agg.Partial || len(agg.PartialReasons) == 0 || agg.Workload.Requests != 8 {
		t.Errorf("partial aggregate: partial=%v reasons=%v requests=%d", agg.Partial, agg.PartialReasons, agg.Workload.Requests)
	}
	if left := pluginProcesses(); len(left) > 0 {
		t.Errorf("plugin processes left: %v", left)
	}
}

func TestInterruptStopsEverything(t *testing.T) {
	dir := t.TempDir()
	pause := filepath.Join(dir, "paused")
	cfg := filepath.Join(dir, "e.toml")
	meter := `
[energy]
meters = ["example-meter"]
`
	if err := os.WriteFile(cfg, []byte(experiment("interrupted", 2, meter)), 0o644); err != nil {
		t.Fatal(err)
	}
	res := filepath.Join(dir, "results")
	r := lemctl(t, []string{"LEM_TEST_PAUSE=window:0:" + pause}, "run", cfg, "--plugin-dir", pluginDir, "--results-dir", res, "--progress", "quiet")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := waitFile(ctx, pause); err != nil {
		r.cmd.Process.Kill()
		t.Fatalf("rank 0 never paused: %v\n%s", err, r.stderr.String())
	}
	if err := r.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(t, 30*time.Second); code != 130 {
		t.Fatalf("run exited %d after SIGINT, want 130\nstderr:\n%s", code, r.stderr.String())
	}
	exp := experimentID(t, res)
	if m := readManifest(t, res, exp); m.State != "interrupted" {
		t.Errorf("manifest state %q, want interrupted", m.State)
	}
	deadline := time.Now().Add(3 * time.Second)
	for len(pluginProcesses()) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if left := pluginProcesses(); len(left) > 0 {
		t.Errorf("plugin processes left 3 s after the interrupt: %v", left)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestGPUDevicesNeedAnInventory: a device list without an energy plugin that reports devices is a
// configuration error (exit 2) naming launch.devices and what is missing, and nothing is written.
func TestGPUDevicesNeedAnInventory(t *testing.T) {
	cfg := strings.Replace(experiment("nogpu", 1, noMeters), `devices = "cpu"`, `devices = [0]`, 1)
	r, res := runExperiment(t, cfg, nil)
	if msg := r.stderr.String(); r.code != 2 || !strings.Contains(msg, "launch.devices") || !strings.Contains(msg, "no energy plugin of [energy].meters reports a device") {
		t.Errorf("exit %d, want 2 naming launch.devices and the missing device inventory\n%s", r.code, r.stderr.String())
	}
	if _, err := os.Stat(res); err == nil {
		t.Errorf("a rejected run wrote %s", res)
	}
}
