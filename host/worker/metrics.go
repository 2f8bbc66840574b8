package worker

import (
	"sort"

	"github.com/lemctl/lemctl/host/energy"
	"github.com/lemctl/lemctl/host/results"
)

// FLOPsMethod says how FLOPs were counted.
const FLOPsMethod = "analytic: per token at position t, 2 × (non-embedding + LM-head parameters) + 4 × layers × d_model × t, over every position processed (docs/methodology.md)"

// metrics fills the raw result's figures from the measured window.
func (st *state) metrics(m *measured) {
	spec, raw := st.w.Spec, st.raw
	raw.Window = results.RawWindow{Span: span(m.start, m.end), Phases: st.phases}

	var reqs []results.Request
	for _, rw := range m.repeats {
		reqs = append(reqs, rw.reqs...)
	}
	raw.Requests = reqs
	wl := results.Workload{Repeats: len(m.repeats), Passes: m.passes, BatchSize: results.IntPtr(spec.Workload.BatchSize)}
	if spec.Workload.Load != nil {
		wl.BatchSize = nil // no static batch: max_concurrency bounds the requests in flight (load)
	}
	wl.Requests, wl.InputTokens, wl.OutputTokens = counts(reqs)
	wl.TruncatedPrompts, wl.TruncatedTokens = truncation(reqs, m.promptTokens)
	wl.ContextExceededPrompts = exceeded(reqs, st.contextLength())
	raw.Workload = wl
	raw.LatencyMS = results.LatencyOf(reqs)
	dur := m.window.Seconds()
	raw.Throughput = results.Throughput{Rates: results.RatesOf(wl, dur)}
	if st.artifact != nil && st.artifact.FLOPs.PerToken > 0 {
		var flops float64
		for _, r := range reqs {
			// Every input token and every output token but the last passes through the model.
			flops += float64(st.artifact.FLOPs.Span(1, r.InputTokens+r.OutputTokens-1))
		}
		raw.FLOPs = results.FLOPs{Total: results.Float(flops), PerOutputToken: results.Ratio(flops, float64(wl.OutputTokens)), Method: FLOPsMethod}
	} else {
		raw.FLOPs = results.FLOPs{Method: "unavailable: the loader reported no FLOPs coefficients"}
	}

	th := energy.Thresholds{MinWindowS: spec.Validity.MinWindowS, MinCounterUpdates: spec.Validity.MinCounterUpdates,
		TemperatureDriftC: spec.Validity.TemperatureDriftC, IntegrationMismatch: spec.Validity.IntegrationMismatch,
		MaxThrottleShare: spec.Validity.MaxThrottleShare, MaxUncertainty: spec.Validity.MaxUncertainty}
	e, findings := energy.Compute(energy.Input{Plugin: st.domainPlugin, Measurements: m.measurements, Window: m.window, IdlePowerW: st.idle, IdleUncertaintyW: st.idleU,
		Prefill: m.prefill, Decode: m.decode, OutputTokens: wl.OutputTokens, Requests: wl.Requests, Thresholds: th})
	raw.Energy = e
	if ci := spec.Energy.CarbonIntensity; ci != nil {
		raw.Energy.CO2e = energy.CO2e(e.TotalJ, wl.Requests, wl.OutputTokens, ci.GPerKWh, ci.Source)
	}
	remote := st.load != nil && st.load.Remote
	if ld := spec.Workload.Load; ld != nil {
		raw.Load = loadFigures(ld, st.loadPath, m.repeats, m.window, m.measurements, raw.Energy.CountedDomains)
		findings = append(findings, loadFindings(raw.Load, spec.Validity.MaxErrorRate)...)
		if st.loadPath == PathServe {
			raw.Energy.Phases = results.EnergyPhases{NotAttributed: phasesNotAttributedServing}
		}
		if remote {
			raw.Load.SteadyState.JPerOutputToken = nil
		}
	}
	if remote {
		findings = append(findings, remoteFinding(st.load.Endpoint))
		raw.Energy.NotAttribute(remoteReason(st.load.Endpoint))
	}
	for _, f := range energy.WindowFindings(m.window, th) {
		if spec.Workload.Load != nil && f.Code == "window_too_short" {
			// A load lasts for its requests, not for workload.min_window_s.
			f.Advice = "send more requests (workload.requests) or for longer (workload.duration_s) so energy counters and clocks resolve the window"
		}
		findings = append(findings, f)
	}
	findings = append(findings, workloadFindings(wl, len(spec.Prompts), spec.Workload, st.contextLength())...)
	findings = append(findings, tokenCountFindings(reqs, spec.Prompts, spec.Engine.Name)...)
	findings = append(findings, st.findings...)

	if m.meterCPUOK && dur > 0 {
		cpuS := float64(m.meterCPUNS) / 1e9
		raw.Overhead = results.Overhead{MeterCPUS: results.Float(cpuS), Share: results.Float(cpuS / dur)}
	}
	if st.load != nil {
		raw.Memory.ModelBytes = nonZero(st.load.ModelBytes)
		raw.Memory.PeakBytes = nonZero(st.load.ResidentBytes)
	}
	if st.engineC != nil && st.engineC.Pid() > 0 {
		if peak, err := st.w.Sys.PeakRSSBytes(st.engineC.Pid()); err == nil {
			raw.Memory.PeakBytes = results.Int64(peak)
		}
	}

	for i, rw := range m.repeats {
		rep := results.Repeat{Index: i, Window: span(rw.start, rw.end)}
		rep.Requests, rep.InputTokens, rep.OutputTokens = counts(rw.reqs)
		rep.OutputTokensPerS = results.Ratio(float64(rep.OutputTokens), rw.iv.Seconds())
		if ej, uj := energy.CountedBetweenU(m.measurements, rw.iv, raw.Energy.CountedDomains); ej != nil {
			rep.EnergyJ, rep.EnergyUncertaintyJ = ej, uj
			if !remote {
				rep.JPerOutputToken = results.Ratio(*ej, float64(rep.OutputTokens))
			}
		}
		lat := results.LatencyOf(rw.reqs)
		rep.TTFTP50MS, rep.ITLP50MS = lat.TTFT.P50, lat.ITL.P50
		raw.Repeats = append(raw.Repeats, rep)
	}

	rank := results.IntPtr(spec.Rank)
	for i := range findings {
		findings[i].Rank = rank
	}
	findings = append(findings, datasetFindings(spec.Dataset)...)
	sort.SliceStable(findings, func(i, j int) bool { return findings[i].Code < findings[j].Code })
	raw.Validity = results.ValidityOf(findings, raw.Energy.Domains)
}

func nonZero(v int64) *int64 {
	if v <= 0 {
		return nil
	}
	return results.Int64(v)
}

// counts returns the number of requests and their input and output tokens.
func counts(reqs []results.Request) (n, in, out int64) {
	for _, r := range reqs {
		n++
		in += int64(r.InputTokens)
		out += int64(r.OutputTokens)
	}
	return n, in, out
}
