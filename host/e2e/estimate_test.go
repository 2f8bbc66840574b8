package e2e

import (
	"math"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/results"
)

// TestRunEstimateMeterWithCarbon runs with meters = ["estimate"] (no energy counter, 10 W per
// core) and a carbon intensity of 400 g/kWh: the result's only energy is the estimate, labelled
// estimated, with energy_estimated in the summary; the CO₂e is total_j ÷ 3.6e6 × 400 with its
// intensity and source recorded.
func TestRunEstimateMeterWithCarbon(t *testing.T) {
	estDir := installProductPlugin(t, "estimate")
	meter := `
[energy]
meters = ["estimate"]
carbon_intensity_source = "test grid, 2026"

[energy.estimate]
watts_per_core = 10.0
interval = "20ms"
`
	cfg := strings.Replace(experiment("estimate", 1, meter), "min_window_s = 0", "min_window_s = 1", 1)
	r, res := runExperiment(t, cfg, nil, "--plugin-dir", estDir, "--carbon-intensity", "400")
	if r.code != 0 {
		t.Fatalf("run exited %d\nstderr:\n%s", r.code, r.stderr.String())
	}
	exp := experimentID(t, res)
	raw, agg := readRaw(t, res, exp, 0), readAggregated(t, res, exp)
	if len(raw.Energy.Domains) != 1 {
		t.Fatalf("domains %+v, want the one estimate", raw.Energy.Domains)
	}
	d := raw.Energy.Domains[0]
	if !strings.HasPrefix(d.ID, "estimate:cpu:") || d.Method != "estimate" || d.Confidence != "estimate" || !d.Available || !d.Counted {
		t.Fatalf("domain %+v, want an available, counted estimate", d)
	}
	if !raw.Energy.Estimated || !agg.Energy.Estimated || raw.Energy.TotalJ == nil {
		t.Errorf("estimated: raw %v, aggregate %v, total %v; want the total labelled estimated", raw.Energy.Estimated, agg.Energy.Estimated, deref(raw.Energy.TotalJ))
	}
	found := false
	for _, f := range raw.Validity.Findings {
		found = found || (f.Code == "energy_estimated" && f.Severity == "warning" && f.Domain == d.ID)
	}
	if !found {
		t.Errorf("no energy_estimated warning on %s in %+v", d.ID, raw.Validity.Findings)
	}
	for _, c := range []struct {
		what  string
		total *float64
		co2   *results.CO2e
	}{{"raw", raw.Energy.TotalJ, raw.Energy.CO2e}, {"aggregate", agg.Energy.TotalJ, agg.Energy.CO2e}} {
		if c.co2 == nil || c.co2.G == nil || c.total == nil {
			t.Errorf("%s: co2e %+v, want one", c.what, c.co2)
			continue
		}
		if want := *c.total / 3.6e6 * 400; math.Abs(*c.co2.G-want) > 1e-12+1e-9*want || c.co2.IntensityGPerKWh != 400 || c.co2.Source != "test grid, 2026" {
			t.Errorf("%s: co2e %v g at %v g/kWh from %q, want %v g at 400 from the configured source", c.what, *c.co2.G, c.co2.IntensityGPerKWh, c.co2.Source, want)
		}
	}
	assertInOrder(t, "run summary", r.stdout.String(),
		"ESTIMATED (no energy counter",
		"CO₂e",
		"at 400 g CO₂e/kWh, source: test grid, 2026",
		"energy_estimated")
}
