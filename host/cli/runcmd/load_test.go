package runcmd

import (
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/config"
)

// A constant or poisson load is split among the workers: the requests as evenly as they go (lower
// ranks one more), the rate evenly, max_concurrency whole to each.
func TestLoadSpecsSplit(t *testing.T) {
	cfg := &config.Config{Workload: config.Workload{Arrival: "poisson", Rate: 9, Requests: 10, MaxConcurrency: 4, Seed: 5}}
	got, err := loadSpecs(cfg, 6, 3)
	if err != nil {
		t.Fatal(err)
	}
	for rank, want := range []int{4, 3, 3} {
		l := got[rank]
		if l.Requests != want || l.Rate != 3 || l.MaxConcurrency != 4 || l.Seed != 5 || l.Arrival != "poisson" {
			t.Errorf("rank %d: %+v, want %d requests at 3/s", rank, l, want)
		}
	}
	cfg.Workload.Requests, cfg.Workload.DurationS = 0, 2.5 // round(9 × 2.5) = 23 (22.5 rounds up)
	got, _ = loadSpecs(cfg, 6, 1)
	if got[0].Requests != 23 {
		t.Errorf("duration_s 2.5 at 9/s: %d requests, want 23", got[0].Requests)
	}
	cfg.Workload.DurationS = 0 // one per prompt of the sample
	got, _ = loadSpecs(cfg, 6, 1)
	if got[0].Requests != 6 {
		t.Errorf("neither requests nor duration_s: %d requests, want the sample's 6", got[0].Requests)
	}
	cfg.Workload.Requests = 2
	if _, err := loadSpecs(cfg, 6, 3); err == nil || !strings.Contains(err.Error(), "workload.requests: 2 request(s) for 3 workers") {
		t.Errorf("2 requests for 3 workers: %v", err)
	}
	cfg.Workload.Arrival = "batch"
	if got, err := loadSpecs(cfg, 6, 2); err != nil || got[0] != nil || got[1] != nil {
		t.Errorf("batch: %v %v", got, err)
	}
}
