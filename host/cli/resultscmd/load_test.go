package resultscmd

import (
	"bytes"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/results"
)

// `results show` (and the run summary, which prints the same table) shows a load's failures by
// kind, its rates and steady state, and says why energy per token is not attributed.
func TestShowLoad(t *testing.T) {
	r := &results.Raw{ExperimentID: "e", Engine: results.Engine{Plugin: "openai", Endpoint: "http://gpu:8000", Remote: true},
		Energy: results.Energy{TotalJ: results.Float(10), NotAttributed: "the model runs on http://gpu:8000, another machine",
			Phases: results.EnergyPhases{NotAttributed: "not attributed: continuous batching"}},
		LatencyMS: results.Latency{TimedBy: "chunks"},
		Load: &results.Load{Arrival: "poisson", Path: "serve", TargetRatePerS: 4, AchievedRatePerS: results.Float(3.9), MaxConcurrency: 8,
			PeakConcurrency: 8, Sent: 40, Failed: 12, FailuresByKind: map[string]int64{"http_5xx": 4, "timeout": 8},
			TokenCount: map[string]int64{"usage": 40}, SteadyState: results.SteadyState{Reason: "the requests in flight never reached workload.max_concurrency = 8"}},
		Validity: results.Validity{Findings: []results.Finding{}}}
	var b bytes.Buffer
	if err := WriteRaw(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"12 of 40 requests failed (30.0 %): http_5xx 4, timeout 8",
		"poisson arrivals, target 4 req/s, achieved 3.900 req/s",
		"not reached: the requests in flight never reached",
		"not attributed: the model runs on http://gpu:8000, another machine",
		"serving at http://gpu:8000 (another machine)",
		"not attributed: continuous batching",
		"timed by streamed chunks",
		"output tokens counted by: usage 40",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("results show lacks %q:\n%s", want, out)
		}
	}
}
