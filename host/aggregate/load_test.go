package aggregate

import (
	"context"
	"testing"

	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/results/resultstest"
)

// Rule: the ranks' loads add up (rates, bounds, failures by kind), the completed rate is over
// the union of the windows, and a rank whose model ran elsewhere leaves the aggregate's energy
// per token not attributed.
func TestLoadCarriedAcrossRanks(t *testing.T) {
	repo := resultstest.NewMemory()
	ctx := context.Background()
	for rank := range 2 {
		w := resultstest.Worker{Exp: "ld", Rank: rank, WorldSize: 2, Host: hostA, Device: cpuDev(rank), StartMonoNS: sec, EndMonoNS: 11 * sec,
			RequestsPerRepeat: 4, InputTokens: 3, OutputTokens: 2, TTFTNS: 1e6, ITLNS: 1e6}
		raw := w.Raw()
		for i := range raw.Requests {
			raw.Requests[i].SendMonoNS = raw.Requests[i].StartMonoNS
			raw.Requests[i].SendLateNS = int64(rank+1) * 1e6
		}
		raw.Requests[0].ErrorKind, raw.Requests[0].FinishReason = "http_5xx", "error"
		raw.Load = &results.Load{Arrival: "poisson", Path: "serve", TargetRatePerS: 2, AchievedRatePerS: results.Float(1.9 + float64(rank)*0.2),
			MaxConcurrency: 4, MeanConcurrency: results.Float(2), PeakConcurrency: 4, Sent: 4, Failed: 1,
			FailuresByKind: map[string]int64{"http_5xx": 1}, TokenCount: map[string]int64{"usage": 4},
			SteadyState: results.SteadyState{Reached: true, DurationS: 5, OutputTokens: 10, TokensPerS: results.Float(2)}}
		if rank == 1 {
			raw.Energy.NotAttribute("the model runs on http://gpu:8000, another machine")
		}
		data, err := results.EncodeRaw(raw)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := repo.SaveRaw(ctx, "ld", rank, data); err != nil {
			t.Fatal(err)
		}
		if _, err := repo.MarkComplete(ctx, "ld", rank, sha(data)); err != nil {
			t.Fatal(err)
		}
	}
	a := run(t, repo, "ld", Options{})
	l := a.Load
	if l == nil {
		t.Fatal("the aggregate has no load block")
	}
	if l.TargetRatePerS != 4 || *l.AchievedRatePerS != 4 || l.MaxConcurrency != 8 || *l.MeanConcurrency != 4 || l.Sent != 8 || l.Failed != 2 ||
		l.FailuresByKind["http_5xx"] != 2 || *l.FailureShare != 0.25 || l.TokenCount["usage"] != 8 || len(l.PerRank) != 2 {
		t.Fatalf("load %+v", l)
	}
	if *l.SendLateMS.Max != 2 || *l.SendLateMS.Min != 1 {
		t.Fatalf("send lateness %+v, want 1..2 ms from the ranks' requests", l.SendLateMS)
	}
	if !l.SteadyState.Reached || l.SteadyState.OutputTokens != 20 || *l.SteadyState.TokensPerS != 4 || l.SteadyState.EnergyJ != nil {
		t.Fatalf("steady state %+v: tokens add up, energy only for one rank", l.SteadyState)
	}
	if want := 6.0 / *a.Window.UnionS; *l.CompletedRatePerS != want {
		t.Fatalf("completed rate %g, want %g (6 completed over the union)", *l.CompletedRatePerS, want)
	}
	if a.Energy.NotAttributed == "" || a.Energy.JPerOutputToken != nil || a.Energy.TokensPerJ != nil {
		t.Fatalf("energy %+v: want not attributed", a.Energy)
	}
	for _, r := range a.Repeats {
		if r.JPerOutputToken != nil {
			t.Fatal("a repeat divides energy that is not attributed")
		}
	}
}
