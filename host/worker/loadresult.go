package worker

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/lemctl/lemctl/host/energy"
	"github.com/lemctl/lemctl/host/launch"
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/sdk"
)

// loadFigures computes the load block of a constant or poisson load from its repeats'
// requests (docs/serving.md, "Results"): rates, concurrency, failures by kind, send lateness, how
// tokens were counted and the steady-state spans (energy over them from ms, when meters ran).
func loadFigures(ld *launch.LoadSpec, path string, reps []repeatWindow, window energy.Interval, ms []*sdk.Measurement, counted []string) *results.Load {
	out := &results.Load{Arrival: ld.Arrival, Path: path, TargetRatePerS: ld.Rate, MaxConcurrency: ld.MaxConcurrency,
		FailuresByKind: map[string]int64{}, TokenCount: map[string]int64{}}
	var late []float64
	var sendIntervals, sendSpanNS float64
	var busyNS float64
	var batch float64
	var batchN, completed int64
	for _, rw := range reps {
		sends := make([]int64, 0, len(rw.reqs))
		for _, r := range rw.reqs {
			out.Sent++
			sends = append(sends, r.SendMonoNS)
			late = append(late, float64(r.SendLateNS)/1e6)
			if r.SendLateNS > lateThresholdNS {
				out.LateSends++
			}
			if r.Failed() {
				out.Failed++
				out.FailuresByKind[r.ErrorKind]++
			} else {
				completed++
			}
			out.TokenCount[r.TokenCount]++
			if r.MeanBatch > 0 {
				batch += r.MeanBatch
				batchN++
			}
			busyNS += float64(r.DoneMonoNS - r.SendMonoNS)
		}
		if len(sends) >= 2 {
			slices.Sort(sends)
			sendIntervals += float64(len(sends) - 1)
			sendSpanNS += float64(sends[len(sends)-1] - sends[0])
		}
		peak, spans, atTarget := concurrency(rw.reqs, ld.MaxConcurrency)
		out.PeakConcurrency = max(out.PeakConcurrency, peak)
		for _, sp := range spans {
			out.SteadyState.DurationS += sp.Seconds()
			out.SteadyState.OutputTokens += tokensIn(rw.reqs, sp)
			out.SteadyState.Spans = append(out.SteadyState.Spans, results.Span{StartMonoNS: sp.StartMonoNS, EndMonoNS: sp.EndMonoNS, DurationS: sp.Seconds()})
		}
		out.SteadyState.AtTargetS += atTarget
	}
	if sendSpanNS > 0 {
		out.AchievedRatePerS = results.Float(sendIntervals / (sendSpanNS / 1e9))
	}
	out.CompletedRatePerS = results.Ratio(float64(completed), window.Seconds())
	out.MeanConcurrency = results.Ratio(busyNS/1e9, window.Seconds())
	out.FailureShare = results.Ratio(float64(out.Failed), float64(out.Sent))
	out.SendLateMS = results.Summarize(late)
	if batchN > 0 {
		out.MeanBatch = results.Float(batch / float64(batchN))
	}
	ss := &out.SteadyState
	if len(ss.Spans) == 0 {
		ss.Reason = fmt.Sprintf("the requests in flight never reached workload.max_concurrency = %d (peak %d): the arrivals came slower than the engine finished them", ld.MaxConcurrency, out.PeakConcurrency)
		return out
	}
	ss.Reached = true
	ss.TokensPerS = results.Ratio(float64(ss.OutputTokens), ss.DurationS)
	if len(counted) > 0 {
		var j, u2 float64
		ok := true
		for _, sp := range ss.Spans {
			ej, uj := energy.CountedBetweenU(ms, energy.Interval{StartMonoNS: sp.StartMonoNS, EndMonoNS: sp.EndMonoNS}, counted)
			if ej == nil {
				ok = false
				break
			}
			j += *ej
			if uj != nil {
				u2 += *uj * *uj
			}
		}
		if ok {
			ss.EnergyJ, ss.EnergyUncertaintyJ = results.Float(j), results.Float(math.Sqrt(u2))
			ss.JPerOutputToken = results.Ratio(j, float64(ss.OutputTokens))
		}
	}
	return out
}

// concurrency sweeps the requests' [send, done] intervals: the peak in flight, the steady-state
// span (from the first moment target requests were in flight to the last moment that ended; none
// when it never happened) and the seconds at the target within it.
func concurrency(reqs []results.Request, target int) (peak int, spans []energy.Interval, atTargetS float64) {
	type ev struct {
		t     int64
		delta int
	}
	evs := make([]ev, 0, 2*len(reqs))
	for _, r := range reqs {
		evs = append(evs, ev{r.SendMonoNS, +1}, ev{r.DoneMonoNS, -1})
	}
	// At one instant, a request that ends leaves before one that starts joins.
	sort.Slice(evs, func(i, j int) bool {
		if evs[i].t != evs[j].t {
			return evs[i].t < evs[j].t
		}
		return evs[i].delta < evs[j].delta
	})
	var n int
	var first, last, since int64
	var at float64
	for _, e := range evs {
		if n >= target && e.delta < 0 {
			at += float64(e.t - since)
			last = e.t
		}
		n += e.delta
		peak = max(peak, n)
		if n >= target && e.delta > 0 {
			since = e.t
			if first == 0 {
				first = e.t
			}
		}
	}
	if first == 0 || last <= first {
		return peak, nil, 0
	}
	return peak, []energy.Interval{{StartMonoNS: first, EndMonoNS: last}}, at / 1e9
}

// tokensIn counts the output tokens produced inside sp: tokens timed inside it, or for a request
// timed only by chunks, its tokens × the share of its chunks inside it (rounded).
func tokensIn(reqs []results.Request, sp energy.Interval) int64 {
	var n int64
	var chunked float64
	in := func(t int64) bool { return t >= sp.StartMonoNS && t <= sp.EndMonoNS }
	for _, r := range reqs {
		switch {
		case len(r.TokenMonoNS) > 0:
			for _, t := range r.TokenMonoNS {
				if in(t) {
					n++
				}
			}
		case len(r.ChunkMonoNS) > 0:
			var k int
			for _, t := range r.ChunkMonoNS {
				if in(t) {
					k++
				}
			}
			chunked += float64(r.OutputTokens) * float64(k) / float64(len(r.ChunkMonoNS))
		}
	}
	return n + int64(math.Round(chunked))
}

// loadFindings are the findings of a load: failed requests by kind (an error above
// validity.max_error_rate), an achieved rate more than 15 % off target, a steady state never
// reached.
func loadFindings(l *results.Load, maxErrorRate float64) []results.Finding {
	var out []results.Finding
	if l.Failed > 0 {
		share := float64(l.Failed) / float64(l.Sent)
		sev, verdict := results.SeverityWarning, fmt.Sprintf("within validity.max_error_rate = %g %%", maxErrorRate*100)
		if share > maxErrorRate {
			sev, verdict = results.SeverityError, fmt.Sprintf("above validity.max_error_rate = %g %%: the result is invalid", maxErrorRate*100)
		}
		out = append(out, results.Finding{Code: CodeRequestsFailed, Severity: sev,
			Message: fmt.Sprintf("%s, %s; latencies leave the failed requests out", l.FailureSummary(), verdict),
			Advice:  "read the failed requests' errors in the raw result (requests[].error); a server that is overloaded fails fewer requests at a lower workload.rate or max_concurrency"})
	}
	if l.AchievedRatePerS != nil && l.TargetRatePerS > 0 {
		if off := (*l.AchievedRatePerS - l.TargetRatePerS) / l.TargetRatePerS; math.Abs(off) > rateTolerance {
			out = append(out, results.Finding{Code: CodeRateOffTarget, Severity: results.SeverityWarning,
				Message: fmt.Sprintf("the requests were sent at %.3g requests/s, %+.1f %% off the target workload.rate of %.3g (more than %g %%): %d of %d sends were late, by up to %.0f ms",
					*l.AchievedRatePerS, off*100, l.TargetRatePerS, rateTolerance*100, l.LateSends, l.Sent, deref(l.SendLateMS.Max)),
				Advice: "the engine could not keep up with max_concurrency requests in flight: lower workload.rate or raise workload.max_concurrency"})
		}
	}
	if !l.SteadyState.Reached {
		out = append(out, results.Finding{Code: CodeSteadyStateNotReached, Severity: results.SeverityInfo,
			Message: "no steady-state window: " + l.SteadyState.Reason,
			Advice:  "raise workload.rate or lower workload.max_concurrency to measure the engine at its target concurrency (docs/serving.md, \"Steady state\")"})
	}
	return out
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

// remoteFinding is the energy_not_attributed finding of an engine whose model runs elsewhere.
func remoteFinding(endpoint string) results.Finding {
	return results.Finding{Code: CodeEnergyNotAttributed, Severity: results.SeverityWarning,
		Message: fmt.Sprintf("energy not attributed: the model runs on %s, another machine; the meters here measured only this machine, so no energy per token or per request is given", endpoint),
		Advice:  "run lemctl on the server's own machine against http://127.0.0.1:… to measure its energy (docs/serving.md, \"Energy attribution\")"}
}

// remoteReason is results.Energy.NotAttributed for a model on another machine.
func remoteReason(endpoint string) string {
	return fmt.Sprintf("the model runs on %s, another machine: this machine's energy is not the model's", endpoint)
}
