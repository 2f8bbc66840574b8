package discovery

import (
	"testing"

	"github.com/lemctl/lemctl/sdk"
)

func TestAutoLeavesOutAnEstimateWhenARealMeterMeasures(t *testing.T) {
	est := []sdk.Domain{{ID: "estimate:cpu:1", Method: sdk.MethodEstimate, Available: true}}
	rapl := []sdk.Domain{{ID: "rapl:intel-rapl:0", Method: sdk.MethodCounter, Available: true}}
	raplOff := []sdk.Domain{{ID: "rapl", Method: sdk.MethodCounter, Available: false, Reason: "no powercap"}}
	for _, tc := range []struct {
		name     string
		answered map[string][]sdk.Domain
		want     string // the real meter that supersedes the estimate; "" when it stays
	}{
		{"a counter is available", map[string][]sdk.Domain{"estimate": est, "rapl": rapl}, "rapl"},
		{"no counter available", map[string][]sdk.Domain{"estimate": est, "rapl": raplOff}, ""},
		{"the estimate alone", map[string][]sdk.Domain{"estimate": est}, ""},
		{"two estimates", map[string][]sdk.Domain{"estimate": est, "other-estimate": est}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := realMeterBeside("estimate", tc.answered["estimate"], tc.answered); got != tc.want {
				t.Errorf("realMeterBeside = %q, want %q", got, tc.want)
			}
			if got := realMeterBeside("rapl", rapl, tc.answered); got != "" {
				t.Errorf("a real meter is never left out, got %q", got)
			}
		})
	}
	r := Refused{Name: "estimate", Estimate: true, Reason: "it only estimates energy, and meter rapl measures this host"}
	if msg := r.Message(); msg != "meter estimate is left out: it only estimates energy, and meter rapl measures this host" {
		t.Errorf("message %q", msg)
	}
}
