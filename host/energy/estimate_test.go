package energy

import (
	"strings"
	"testing"
	"time"

	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/sdk"
)

func estimated(id string, watts float64) sdk.DomainEnergy {
	d := constant(id, sdk.DomainPackage, watts, 0, 10*sec, 100*time.Millisecond)
	d.Domain.Method, d.Domain.Confidence, d.Domain.Scope = sdk.MethodEstimate, sdk.ConfidenceEstimate, sdk.ScopeProcess
	return d
}

func TestEstimateNeverMixedIntoAMeasuredTotal(t *testing.T) {
	w := Interval{1 * sec, 9 * sec}
	gpu := constant("gpu:0", sdk.DomainGPU, 100, 0, 10*sec, 100*time.Millisecond)
	est := estimated("estimate:cpu", 20)
	e, fs := Compute(Input{Measurements: []*sdk.Measurement{{Domains: []sdk.DomainEnergy{est}}, {Domains: []sdk.DomainEnergy{gpu}}}, Window: w, Thresholds: defaults()})
	if e.TotalJ == nil || *e.TotalJ < 799 || *e.TotalJ > 801 {
		t.Errorf("total = %v, want the GPU's 800 J alone", deref(e.TotalJ))
	}
	if e.Estimated {
		t.Error("a measured total is labelled estimated")
	}
	for _, d := range e.Domains {
		if d.ID == "estimate:cpu" && (d.Counted || !strings.Contains(d.NotCounted, "never added to measured energy")) {
			t.Errorf("the estimate is counted or lacks the reason: counted %v, %q", d.Counted, d.NotCounted)
		}
	}
	if f := finding(fs, "energy_estimated"); f == nil || f.Severity != results.SeverityWarning || f.Domain != "estimate:cpu" {
		t.Errorf("energy_estimated = %+v, want a warning on estimate:cpu", f)
	}

	// Only the estimate: it counts, and the total says it is an estimate.
	e, fs = Compute(Input{Measurements: []*sdk.Measurement{{Domains: []sdk.DomainEnergy{est}}}, Window: w, Thresholds: defaults()})
	if e.TotalJ == nil || *e.TotalJ < 159 || *e.TotalJ > 161 || !e.Estimated {
		t.Errorf("estimate alone: total %v estimated %v, want 160 J labelled estimated", deref(e.TotalJ), e.Estimated)
	}
	if finding(fs, "energy_estimated") == nil || finding(fs, "no_energy_measured") != nil {
		t.Errorf("estimate alone: findings %v, want energy_estimated and not no_energy_measured", codes(fs))
	}
}
