package aggregate

import (
	"strconv"

	"github.com/lemctl/lemctl/host/results"
)

// load combines the workers' load blocks (docs/serving.md, "Results"): the ranks send at the
// same time, so their target and achieved rates, their concurrency bounds and their mean
// concurrency add up; the peak adds the ranks' peaks (an upper bound: they need not coincide);
// failures, sends and token-count sources are summed, the send lateness and the mean batch are
// recomputed from every rank's requests, and the completed rate is over the union of the windows.
// The steady state adds the ranks' tokens and tokens/s; its energy is given for one rank only
// (the ranks' spans differ, and a domain several ranks see would be counted once per rank).
// nil when no rank ran a constant or poisson load.
func load(ws []*worker, unionS float64) *results.Load {
	var out *results.Load
	var late, batches []float64
	var completed int64
	achievedKnown, meanKnown := true, true
	var achieved, mean float64
	for _, w := range ws {
		l := w.raw.Load
		if l == nil {
			continue
		}
		if out == nil {
			out = &results.Load{Arrival: l.Arrival, Path: l.Path, FailuresByKind: map[string]int64{}, TokenCount: map[string]int64{},
				SteadyState: results.SteadyState{Reached: true}}
		}
		if l.Path != out.Path {
			out.Path = "mixed"
		}
		out.TargetRatePerS += l.TargetRatePerS
		out.MaxConcurrency += l.MaxConcurrency
		out.PeakConcurrency += l.PeakConcurrency
		out.Sent += l.Sent
		out.Failed += l.Failed
		out.LateSends += l.LateSends
		for k, v := range l.FailuresByKind {
			out.FailuresByKind[k] += v
		}
		for k, v := range l.TokenCount {
			out.TokenCount[k] += v
		}
		if l.AchievedRatePerS == nil {
			achievedKnown = false
		} else {
			achieved += *l.AchievedRatePerS
		}
		if l.MeanConcurrency == nil {
			meanKnown = false
		} else {
			mean += *l.MeanConcurrency
		}
		for _, r := range w.raw.Requests {
			late = append(late, float64(r.SendLateNS)/1e6)
			if !r.Failed() {
				completed++
			}
			if r.MeanBatch > 0 {
				batches = append(batches, r.MeanBatch)
			}
		}
		ss := l.SteadyState
		if !ss.Reached {
			out.SteadyState.Reached = false
			if out.SteadyState.Reason == "" {
				out.SteadyState.Reason = "rank " + strconv.Itoa(w.rank) + ": " + ss.Reason
			}
		}
		out.SteadyState.DurationS = max(out.SteadyState.DurationS, ss.DurationS)
		out.SteadyState.AtTargetS = max(out.SteadyState.AtTargetS, ss.AtTargetS)
		out.SteadyState.OutputTokens += ss.OutputTokens
		if ss.TokensPerS != nil {
			out.SteadyState.TokensPerS = results.Float(ptr0(out.SteadyState.TokensPerS) + *ss.TokensPerS)
		}
		out.PerRank = append(out.PerRank, results.RankLoad{Rank: w.rank, TargetRatePerS: l.TargetRatePerS, AchievedRatePerS: l.AchievedRatePerS,
			MeanConcurrency: l.MeanConcurrency, PeakConcurrency: l.PeakConcurrency, Sent: l.Sent, Failed: l.Failed, SteadyState: stripSpans(ss)})
	}
	if out == nil {
		return nil
	}
	if achievedKnown {
		out.AchievedRatePerS = results.Float(achieved)
	}
	if meanKnown {
		out.MeanConcurrency = results.Float(mean)
	}
	out.CompletedRatePerS = results.Ratio(float64(completed), unionS)
	out.FailureShare = results.Ratio(float64(out.Failed), float64(out.Sent))
	out.SendLateMS = results.Summarize(late)
	if len(batches) > 0 {
		var s float64
		for _, b := range batches {
			s += b
		}
		out.MeanBatch = results.Float(s / float64(len(batches)))
	}
	if len(out.PerRank) == 1 {
		ss := out.PerRank[0].SteadyState
		out.SteadyState.EnergyJ, out.SteadyState.EnergyUncertaintyJ, out.SteadyState.JPerOutputToken = ss.EnergyJ, ss.EnergyUncertaintyJ, ss.JPerOutputToken
	}
	if !out.SteadyState.Reached {
		out.SteadyState.DurationS, out.SteadyState.AtTargetS, out.SteadyState.OutputTokens, out.SteadyState.TokensPerS = 0, 0, 0, nil
	}
	return out
}

func stripSpans(ss results.SteadyState) results.SteadyState {
	ss.Spans = nil
	return ss
}

func ptr0(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}
