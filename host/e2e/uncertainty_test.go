package e2e

import (
	"math"
	"strings"
	"testing"
	"time"
)

// coarseMeter is a 150 W node meter whose counter updates every 50 ms, sampled every 10 ms: the
// batches' first tokens fall between counter updates, so the phase split is interpolated.
const coarseMeter = `
[energy]
meters = ["example-meter"]

[energy.example-meter]
domains = ["example-node:node:node"]
power_w = 150.0
update_period = "50ms"
interval = "10ms"
`

// A real run carries a standard uncertainty on its energy and its phases, the truth (150 W ×
// window) lies within ± 2u, and results show and export print them.
func TestRunShowsEnergyUncertaintyAndPhases(t *testing.T) {
	cfg := strings.Replace(experiment("uncert", 1, coarseMeter), "min_window_s = 0", "min_window_s = 2", 1)
	r, res := runExperiment(t, cfg, nil)
	if r.code != 0 {
		t.Fatalf("run exited %d\nstderr:\n%s", r.code, r.stderr.String())
	}
	exp := experimentID(t, res)
	raw := readRaw(t, res, exp, 0)
	e := raw.Energy
	if e.TotalJ == nil || e.UncertaintyJ == nil || *e.UncertaintyJ <= 0 || e.RelativeUncertainty == nil {
		t.Fatalf("energy %v ± %v, want a total with a positive standard uncertainty", deref(e.TotalJ), deref(e.UncertaintyJ))
	}
	want := 150 * raw.Window.DurationS
	t.Logf("total %.4f J, truth %.4f J (150 W × %.6f s): error %+.4f J, u %.4f J", *e.TotalJ, want, raw.Window.DurationS, *e.TotalJ-want, *e.UncertaintyJ)
	if err := math.Abs(*e.TotalJ - want); err > 2**e.UncertaintyJ {
		t.Errorf("total %.4f J, truth %.4f J: error %.4f J outside ± 2u = %.4f J", *e.TotalJ, want, err, 2**e.UncertaintyJ)
	}
	// The worker waits one update period and one sampling interval after the meter starts and
	// before it stops (energy.EdgeWait), so each window edge lies between two counter update
	// points: a change of the counter before the window's start and one after its end.
	for _, d := range raw.Energy.Domains {
		if !d.Counted {
			continue
		}
		before, after := false, false
		for i := 1; i < len(d.Timeline); i++ {
			if d.Timeline[i].EnergyUJ == d.Timeline[i-1].EnergyUJ {
				continue
			}
			before = before || d.Timeline[i].MonoNS < raw.Window.StartMonoNS
			after = after || d.Timeline[i].MonoNS > raw.Window.EndMonoNS
		}
		if !before || !after {
			t.Errorf("domain %s: a counter update before the window's start %v, after its end %v; want both (%d samples)", d.ID, before, after, len(d.Timeline))
		}
	}
	ph := e.Phases
	if ph.PrefillJ == nil || ph.DecodeJ == nil || ph.PrefillUncertaintyJ == nil || ph.DecodeUncertaintyJ == nil || ph.Batches == 0 {
		t.Fatalf("phases %+v, want prefill and decode with uncertainties", ph)
	}
	if raw.Validity.Valid == false {
		t.Errorf("findings %+v", raw.Validity.Findings)
	}
	show := lemctl(t, nil, "results", "show", exp, "--plugin-dir", pluginDir, "--results-dir", res)
	if code := show.wait(t, time.Minute); code != 0 {
		t.Fatalf("results show exited %d: %s", code, show.stderr.String())
	}
	assertInOrder(t, "results show", show.stdout.String(),
		" ± ", "J total",
		"J/output token", " ± ",
		"uncertainty", "standard uncertainties",
		"phases", "prefill ", " ± ", "decode ", " ± ", "batch(es)")
	csv := lemctl(t, nil, "results", "export", exp, "--plugin-dir", pluginDir, "--results-dir", res)
	if code := csv.wait(t, time.Minute); code != 0 {
		t.Fatalf("results export exited %d: %s", code, csv.stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(csv.stdout.String()), "\n")
	head := strings.Split(lines[0], ",")
	idx := map[string]int{}
	for i, h := range head {
		idx[h] = i
	}
	for _, col := range []string{"energy_uncertainty_j", "prefill_j", "prefill_uncertainty_j", "decode_j", "decode_uncertainty_j"} {
		i, ok := idx[col]
		if !ok {
			t.Errorf("export has no column %s", col)
			continue
		}
		if cells := strings.Split(lines[1], ","); i >= len(cells) || cells[i] == "" {
			t.Errorf("export: the aggregate's %s is empty:\n%s", col, csv.stdout.String())
		}
	}
}
