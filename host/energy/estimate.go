package energy

import (
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/sdk"
)

// notCountedEstimate is why an estimated domain is left out of a measured total.
const notCountedEstimate = "an estimate (method estimate): a meter measured this host, and an estimate is never added to measured energy"

// countedWithEstimates is CountedSet with the estimate rule in front of it: the estimated
// domains of ds (method estimate) count only when no domain of the host was measured; otherwise
// they are left out with notCountedEstimate, so an estimate is never mixed into a measured total.
// When only estimates were measured, the containment rule applies among them and the total is
// labelled estimated (EstimatedTotal).
func countedWithEstimates(ms []Measured, ds []*results.Domain) ([]string, map[string]string) {
	estimate := map[string]bool{}
	for _, d := range ds {
		if d.Method == sdk.MethodEstimate {
			estimate[d.ID] = true
		}
	}
	var real, est []Measured
	for _, m := range ms {
		if estimate[m.ID] {
			est = append(est, m)
		} else {
			real = append(real, m)
		}
	}
	if len(real) == 0 {
		return CountedSet(est)
	}
	counted, why := CountedSet(real)
	for _, m := range est {
		why[m.ID] = notCountedEstimate
	}
	return counted, why
}

// EstimatedTotal reports whether the counted domains of ds include an estimate: then the total
// is an estimate, not a measurement (results.Energy.Estimated).
func EstimatedTotal(ds []results.Domain) bool {
	for _, d := range ds {
		if d.Counted && d.Method == sdk.MethodEstimate {
			return true
		}
	}
	return false
}
