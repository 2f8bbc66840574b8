package e2e

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/sdk/clock"
)

// TestRunThrottlingShareOnSimulatedNVML: the simulated GPU reports a hardware thermal slowdown
// for the first 0.5 s of every 2 s. The raw result carries the SM and memory clocks and the
// reasons in its timeline, and a throttled_window error (a quarter of the window is far above the
// 5 % default) whose share is the script's: the overlap of the throttled spans with the window,
// within what the sampling can resolve (each on/off transition is placed to within the gap
// between the two reads around it).
func TestRunThrottlingShareOnSimulatedNVML(t *testing.T) {
	nvmlDir, lib := simulatedNVML(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "trace.txt")
	const period, on = 2.0, 0.5 // s
	const uuid = "GPU-11111111-2222-3333-4444-555555555555"
	trace := fmt.Sprintf("gpus 1\nupdate_ms 100\ndev 0 uuid %s\nseg 0 100000 250\ndev 0 throttle_every %g %g 0x40\n", uuid, period, on)
	if err := os.WriteFile(script, []byte(trace), 0o644); err != nil {
		t.Fatal(err)
	}
	t0 := clock.Mono()
	env := []string{"LEM_FAKE_NVML_SCRIPT=" + script, "LEM_FAKE_NVML_LOG=" + filepath.Join(dir, "nvml.log"), fmt.Sprintf("LEM_FAKE_NVML_T0=%d", t0)}
	meter := `
[energy]
meters = ["nvml"]

[energy.nvml]
library_path = "` + lib + `"
interval = "50ms"
`
	cfg := experiment("throttle", 1, meter)
	cfg = strings.Replace(cfg, `devices = "cpu"`, `devices = [0]`, 1)
	cfg = strings.Replace(cfg, "min_window_s = 0", "min_window_s = 6", 1)
	r, res := runExperiment(t, cfg, env, "--plugin-dir", nvmlDir)
	if r.code != 0 {
		t.Fatalf("run exited %d\nstderr:\n%s", r.code, r.stderr.String())
	}
	exp := experimentID(t, res)
	raw := readRaw(t, res, exp, 0)
	w0, w1 := raw.Window.StartMonoNS, raw.Window.EndMonoNS
	winS := float64(w1-w0) / 1e9

	// The script's share: the throttled spans [k·period, k·period + on) s after t0 inside the window.
	sec := func(ns int64) float64 { return float64(ns-t0) / 1e9 }
	var throttled float64
	var transitions []float64
	for k := 0.0; k*period < sec(w1)+period; k++ {
		a, b := k*period, k*period+on
		throttled += math.Max(0, math.Min(b, sec(w1))-math.Max(a, sec(w0)))
		transitions = append(transitions, a, b)
	}
	want := throttled / winS

	var reads []int64 // when the GPU's clock-event reasons were read
	var finding, severity string
	seen := false
	for _, d := range raw.Energy.Domains {
		if d.Kind != "gpu" {
			continue
		}
		seen = true
		clocks := 0
		for _, s := range d.Timeline {
			if s.ClockEventReasons != nil {
				reads = append(reads, s.MonoNS)
			}
			if s.SMClockMHz != nil && *s.SMClockMHz == 1980 && s.MemoryClockMHz != nil && *s.MemoryClockMHz == 2619 {
				clocks++
			}
		}
		if clocks == 0 || len(reads) < 10 {
			t.Fatalf("the GPU timeline has %d samples with clocks and %d with reasons; want both", clocks, len(reads))
		}
	}
	if !seen {
		t.Fatalf("no GPU domain in %+v", raw.Energy.Domains)
	}
	for _, f := range raw.Validity.Findings {
		if f.Code == "throttled_window" {
			finding, severity = f.Message, f.Severity
		}
	}
	if finding == "" {
		t.Fatalf("no throttled_window finding in %+v", raw.Validity.Findings)
	}
	if severity != "error" || raw.Validity.Valid {
		t.Errorf("severity %s, valid %v; want an error and an invalid result (%.0f %% > 5 %%)", severity, raw.Validity.Valid, want*100)
	}
	// How far the sampled share may be from the script's: for each transition in or near the
	// window, the gap between the reads around it.
	var tolS float64
	for _, tr := range transitions {
		ns := t0 + int64(tr*1e9)
		for i := 1; i < len(reads); i++ {
			if reads[i-1] <= ns && ns < reads[i] && reads[i] > w0 && reads[i-1] < w1 {
				tolS += float64(reads[i]-reads[i-1]) / 1e9
			}
		}
	}
	var got float64
	if _, err := fmt.Sscanf(finding[strings.Index(finding, "for ")+4:], "%f %%", &got); err != nil {
		t.Fatalf("no share in %q: %v", finding, err)
	}
	tol := tolS/winS*100 + 0.05 // + the message's rounding to 0.1 %
	t.Logf("throttled share %.1f %%, script %.2f %% ± %.2f %% over %.2f s", got, want*100, tol, winS)
	if math.Abs(got-want*100) > tol {
		t.Errorf("share %.1f %%, want %.1f %% ± %.1f %% (the script over the %.2f s window)\n%s", got, want*100, tol, winS, finding)
	}
	if !strings.Contains(finding, "hw_thermal_slowdown") {
		t.Errorf("the finding does not name the reason: %q", finding)
	}
	assertInOrder(t, "run summary", r.stdout.String(), "INVALID", "error     throttled_window")
}
