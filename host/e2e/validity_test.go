package e2e

import (
	"encoding/json"
	"slices"
	"testing"
)

// [validity] reaches the worker: with the defaults (10 s, 10 updates) a sub-second window on a
// counter that never moves raises window_too_short and too_few_counter_updates; with 0 (no
// minimum) neither. The recorded config carries min_window_overlap for the aggregation.
func TestRunValidityMinimumsZeroMeanNone(t *testing.T) {
	const meter = `
[energy]
meters = ["example-meter"]

[energy.example-meter]
domains = ["dead:dram:socket:0"]
update_period = "10ms"
interval = "20ms"
`
	for _, tc := range []struct {
		name string
		set  []string
		want bool
	}{
		{"defaults", nil, true},
		{"zero", []string{"--set", "validity.min_window_s=0", "--set", "validity.min_counter_updates=0", "--set", "validity.min_window_overlap=0.8"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, res := runExperiment(t, experiment("validity", 1, meter), nil, tc.set...)
			if r.code != 0 {
				t.Fatalf("run exited %d\nstderr:\n%s", r.code, r.stderr.String())
			}
			raw := readRaw(t, res, experimentID(t, res), 0)
			var codes []string
			for _, f := range raw.Validity.Findings {
				codes = append(codes, f.Code)
			}
			for _, c := range []string{"window_too_short", "too_few_counter_updates"} {
				if slices.Contains(codes, c) != tc.want {
					t.Errorf("finding %s raised = %v, want %v (findings %v)", c, !tc.want, tc.want, codes)
				}
			}
			var cfg struct {
				Validity struct {
					MinWindowOverlap float64 `json:"min_window_overlap"`
				} `json:"validity"`
			}
			if err := json.Unmarshal(raw.Config, &cfg); err != nil {
				t.Fatal(err)
			}
			if want := map[bool]float64{true: 0.5, false: 0.8}[tc.want]; cfg.Validity.MinWindowOverlap != want {
				t.Errorf("recorded validity.min_window_overlap = %v, want %v", cfg.Validity.MinWindowOverlap, want)
			}
		})
	}
}
