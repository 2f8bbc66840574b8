package energy

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/sdk"
)

// Interval is a span on the monotonic clock.
type Interval struct{ StartMonoNS, EndMonoNS int64 }

// Seconds returns the interval's length.
func (iv Interval) Seconds() float64 { return float64(iv.EndMonoNS-iv.StartMonoNS) / 1e9 }

// The containment rule (docs/design.md, "Which domains count"). On one host:
//   - a node domain (a PDU, a BMC, a smart plug) contains the host's package, DRAM and GPU
//     domains, and everything nested in them;
//   - GPU, package and DRAM domains never contain each other;
//   - psys contains package, which contains core and uncore: none of the three is ever summed;
//   - what an other domain covers is unknown, so it is never summed with anything: it is counted
//     only when it is the one measured domain that can count on that host.
//
// A domain never adds to one that contains it. total_j is the energy of the widest set of
// non-overlapping measured domains of each host: one node domain if the host has one, else
// every GPU, package and DRAM domain, else one other domain. Every domain is reported either way.

// Measured is a domain that has energy over the window, as CountedSet sees it.
type Measured struct{ ID, Kind string }

// CountedSet applies the containment rule to the measured domains of one host. It returns the
// ids that count towards total_j (in the order given) and, for every other measured domain, why
// it does not. Among several node (or other) domains the one with the lowest id counts: they
// may cover the same thing, so they are never added together.
func CountedSet(ds []Measured) (counted []string, notCounted map[string]string) {
	notCounted = map[string]string{}
	first := func(kind string) string {
		id := ""
		for _, d := range ds {
			if d.Kind == kind && (id == "" || d.ID < id) {
				id = d.ID
			}
		}
		return id
	}
	node, other := first(sdk.DomainNode), first(sdk.DomainOther)
	components := false
	for _, d := range ds {
		components = components || isComponent(d.Kind)
	}
	for _, d := range ds {
		why := ""
		switch {
		case d.Kind == sdk.DomainCore || d.Kind == sdk.DomainUncore:
			why = "nested in the package domain"
		case d.Kind == sdk.DomainPsys:
			why = "psys contains the package domains (an alternative total, never added to them)"
		case node != "" && d.ID == node:
		case node != "" && d.Kind == sdk.DomainNode:
			why = "another node domain, " + node + ", is counted (two node meters may measure the same node)"
		case node != "":
			why = "inside node domain " + node
		case isComponent(d.Kind):
		case d.Kind == sdk.DomainOther && components:
			why = "kind other: what it covers is unknown, so it is not added to the GPU, package and DRAM domains"
		case d.ID == other:
		case d.Kind == sdk.DomainOther:
			why = "another other domain, " + other + ", is counted (other domains are never added together)"
		default:
			why = "unknown kind " + d.Kind
		}
		if why == "" {
			counted = append(counted, d.ID)
		} else {
			notCounted[d.ID] = why
		}
	}
	return counted, notCounted
}

func isComponent(kind string) bool {
	return kind == sdk.DomainGPU || kind == sdk.DomainPackage || kind == sdk.DomainDRAM
}

// MarkCounted applies CountedSet to the measured (available, with total_j) domains of one host
// in ds and sets each one's Counted and NotCounted. It returns the counted ids.
func MarkCounted(ds []*results.Domain) []string {
	var ms []Measured
	for _, d := range ds {
		d.Counted, d.NotCounted = false, ""
		if d.Available && d.TotalJ != nil {
			ms = append(ms, Measured{ID: d.ID, Kind: d.Kind})
		}
	}
	counted, why := countedWithEstimates(ms, ds)
	in := map[string]bool{}
	for _, id := range counted {
		in[id] = true
	}
	for _, d := range ds {
		d.Counted = in[d.ID] && d.Available && d.TotalJ != nil
		d.NotCounted = why[d.ID]
	}
	return counted
}

// At returns the cumulative energy (µJ) at t and how far t is from the nearest point it was
// interpolated from. The curve runs through the counter's update points: the first sample of
// each counter value, and the first and last sample (a sample that repeats the value before it
// says only that the counter has not updated yet, not that no energy flowed). Between two such
// points the curve is linear. ok is false when t is outside the samples' span (the curve is not
// extrapolated). With a counter that changes at every sample this is plain linear
// interpolation between samples.
func At(samples []sdk.Sample, t int64) (uj float64, gap time.Duration, ok bool) {
	k1, k2, ok := knots(samples, t, -1)
	if !ok {
		return 0, 0, false
	}
	if k1 == k2 {
		return float64(samples[k1].Energy), 0, true
	}
	a, b := samples[k1], samples[k2]
	frac := float64(t-a.MonoNS) / float64(b.MonoNS-a.MonoNS)
	e := float64(a.Energy) + frac*(float64(b.Energy)-float64(a.Energy))
	g := min(t-a.MonoNS, b.MonoNS-t)
	return e, time.Duration(g), true
}

// Between returns the energy in joules between t0 and t1 from a cumulative curve, and the larger
// of the two edge gaps.
func Between(samples []sdk.Sample, t0, t1 int64) (j float64, gap time.Duration, ok bool) {
	e0, g0, ok0 := At(samples, t0)
	e1, g1, ok1 := At(samples, t1)
	if !ok0 || !ok1 {
		return 0, 0, false
	}
	return (e1 - e0) / 1e6, max(g0, g1), true
}

// IdlePowers returns each available domain's mean power over a baseline measurement, in watts.
func IdlePowers(m *sdk.Measurement) map[string]float64 {
	out := map[string]float64{}
	if m == nil {
		return out
	}
	for _, d := range m.Domains {
		if !d.Domain.Available || len(d.Samples) < 2 {
			continue
		}
		first, last := d.Samples[0], d.Samples[len(d.Samples)-1]
		if last.MonoNS <= first.MonoNS {
			continue
		}
		out[d.Domain.ID] = float64(last.Energy-first.Energy) / 1e6 / (float64(last.MonoNS-first.MonoNS) / 1e9)
	}
	return out
}

// IdleUncertainties returns the standard uncertainty of each IdlePowers figure, in watts: the
// baseline energy's budget (Between's read at both ends of the baseline) ÷ its duration.
func IdleUncertainties(m *sdk.Measurement) map[string]float64 {
	out := map[string]float64{}
	if m == nil {
		return out
	}
	for _, d := range m.Domains {
		if !d.Domain.Available || len(d.Samples) < 2 {
			continue
		}
		first, last := d.Samples[0], d.Samples[len(d.Samples)-1]
		if last.MonoNS <= first.MonoNS {
			continue
		}
		if b, ok := interval(d.Samples, d.Domain, first.MonoNS, last.MonoNS, nil); ok {
			out[d.Domain.ID] = b.u() / (float64(last.MonoNS-first.MonoNS) / 1e9)
		}
	}
	return out
}

// Thresholds are the validity thresholds the energy findings use ([validity], docs/config.md).
// The caller passes the config's values (config.DefaultValidity without a config); a zero
// minimum means no minimum.
type Thresholds struct {
	MinWindowS        float64 // window_too_short below this many seconds
	MinCounterUpdates int     // too_few_counter_updates below this many counter changes
	// TemperatureDriftC: temperature_drift when a domain's temperature ranges over more than
	// this many °C in the window.
	TemperatureDriftC float64
	// IntegrationMismatch: counter_integration_mismatch when a counter and its integrated
	// instant power differ by more than this share (0.10 = 10 %) beyond the edge terms.
	IntegrationMismatch float64
	// MaxThrottleShare: throttled_window is an error (else a warning) when a domain's clocks
	// were held down by thermal or power limits for more than this share of the window.
	MaxThrottleShare float64
	// MaxUncertainty: uncertainty_too_high (an error) when the total's standard uncertainty is
	// more than this share of it (0.10 = 10 %); 0 means no maximum.
	MaxUncertainty float64
}

// Input is everything one worker (or `lemctl measure`) knows about a window's energy.
type Input struct {
	// Plugin names the meter plugin of each domain id (for the result), optional.
	Plugin map[string]string
	// Measurements are the sessions that covered the window, one per meter plugin.
	Measurements []*sdk.Measurement
	Window       Interval
	// IdlePowerW maps domain id → idle power from the baseline; nil when there was none.
	IdlePowerW map[string]float64
	// IdleUncertaintyW maps domain id → the standard uncertainty of its idle power (from
	// IdleUncertainties); a domain without an entry has an idle power taken as exact.
	IdleUncertaintyW map[string]float64
	// NoBaseline says the caller measures no baseline by design (lemctl measure): the missing
	// static/dynamic split is then not a finding.
	NoBaseline bool
	// Prefill and Decode are the batch intervals of each phase inside the window.
	Prefill, Decode []Interval
	OutputTokens    int64
	Requests        int64
	Thresholds      Thresholds
}

// Compute returns the energy block of a result and the validity findings about it.
func Compute(in Input) (results.Energy, []results.Finding) {
	var out results.Energy
	var findings []results.Finding
	add := func(code, sev, domain, msg, advice string) {
		findings = append(findings, results.Finding{Code: code, Severity: sev, Domain: domain, Message: msg, Advice: advice})
	}
	seen := map[string]bool{}
	for _, m := range in.Measurements {
		if m == nil {
			continue
		}
		for _, de := range m.Domains {
			if seen[de.Domain.ID] {
				continue // the same domain from two meters: keep the first
			}
			seen[de.Domain.ID] = true
			d := domain(de, in, add)
			if p := in.Plugin[de.Domain.ID]; p != "" {
				d.Plugin = p
			}
			out.Domains = append(out.Domains, d)
		}
		for _, f := range m.Findings {
			if f.Domain != "" && isDomainHealth(m, f) {
				continue // already attached to its domain
			}
			findings = append(findings, results.Finding{Code: f.Code, Severity: f.Severity, Message: f.Message, Advice: f.Advice, Domain: f.Domain})
		}
	}
	summarize(&out, in, add)
	return out, findings
}

func isDomainHealth(m *sdk.Measurement, f sdk.Finding) bool {
	for _, d := range m.Domains {
		for _, h := range d.Health {
			if h.Code == f.Code && h.Domain == f.Domain && h.Message == f.Message {
				return true
			}
		}
	}
	return false
}

func domain(de sdk.DomainEnergy, in Input, add func(code, sev, domain, msg, advice string)) results.Domain {
	dom := de.Domain
	d := results.Domain{ID: dom.ID, Name: dom.Name, Kind: dom.Kind, Scope: dom.Scope, Method: dom.Method, Confidence: dom.Confidence,
		Available: dom.Available, Reason: dom.Reason, Health: []results.Finding{}}
	if dev := dom.Device; dev != nil {
		d.DeviceUUID, d.DeviceVendor, d.DeviceIndex = dev.ID, dev.Vendor, results.IntPtr(dev.Index)
	}
	if dom.Resolution > 0 {
		d.ResolutionJ = results.Float(dom.Resolution.Joules())
	}
	if dom.UpdatePeriod > 0 {
		d.UpdatePerS = results.Float(dom.UpdatePeriod.Seconds())
	}
	for _, h := range de.Health {
		d.Health = append(d.Health, results.Finding{Code: h.Code, Severity: h.Severity, Message: h.Message, Advice: h.Advice, Domain: dom.ID})
	}
	if !dom.Available {
		if d.Reason == "" {
			d.Reason = "unavailable (the meter gave no reason)"
		}
		return d
	}
	_, gap, ok := Between(de.Samples, in.Window.StartMonoNS, in.Window.EndMonoNS)
	bud, okb := interval(de.Samples, dom, in.Window.StartMonoNS, in.Window.EndMonoNS, nil)
	total := bud.j
	if !ok || !okb {
		d.Available = false
		d.Reason = "the meter's samples do not cover the measured window"
		return d
	}
	d.TotalJ = results.Float(total)
	d.EdgeGapS = results.Float(gap.Seconds())
	d.UncertaintyJ = results.Float(bud.u())
	d.UncertaintyMethod = methodOf(dom)
	d.UncertaintyTerms = terms(bud)
	if dom.UpdatePeriod > 0 && in.Window.Seconds() > 0 {
		// One update period of mean power at each of the two edges.
		d.QuantisationJ = results.Float(2 * dom.UpdatePeriod.Seconds() * total / in.Window.Seconds())
	}
	updates := 0
	for i := 1; i < len(de.Samples); i++ {
		s := de.Samples[i]
		if s.MonoNS > in.Window.StartMonoNS && s.MonoNS <= in.Window.EndMonoNS && s.Energy != de.Samples[i-1].Energy {
			updates++
		}
	}
	d.CounterUpdates = results.IntPtr(updates)
	if updates < in.Thresholds.MinCounterUpdates {
		add("too_few_counter_updates", results.SeverityWarning, dom.ID,
			fmt.Sprintf("the %s counter changed %d times in the window (fewer than %d): quantisation error is large", dom.ID, updates, in.Thresholds.MinCounterUpdates),
			"lengthen the window (workload.min_window_s) or sample faster")
	}
	window := inWindow(de.Samples, in.Window)
	if f := temperatureDrift(dom.ID, window, in.Thresholds.TemperatureDriftC); f != nil {
		add(f.Code, f.Severity, f.Domain, f.Message, f.Advice)
	}
	if f := throttled(dom.ID, de.Samples, in.Window, in.Thresholds.MaxThrottleShare); f != nil {
		add(f.Code, f.Severity, f.Domain, f.Message, f.Advice)
	}
	if dom.Method == sdk.MethodCounter && updates >= 5 && !hasCode(de.Health, "counter_reset") && !hasCode(de.Health, "counter_stuck") {
		if f := mismatch(dom, window, in.Thresholds.IntegrationMismatch); f != nil {
			add(f.Code, f.Severity, f.Domain, f.Message, f.Advice)
		}
	}
	if dom.Method == sdk.MethodEstimate || dom.Confidence == sdk.ConfidenceEstimate {
		add("energy_estimated", results.SeverityWarning, dom.ID, fmt.Sprintf("domain %s is an estimate, not a measurement", dom.ID), "")
	}
	if idle, ok := in.IdlePowerW[dom.ID]; ok && in.IdlePowerW != nil {
		static := idle * in.Window.Seconds()
		dyn := total - static
		if dyn < 0 {
			add("dynamic_negative", results.SeverityWarning, dom.ID,
				fmt.Sprintf("domain %s used %.4g J in the window, less than its idle power × window (%.4g J); dynamic energy floored at 0", dom.ID, total, static),
				"the baseline was not idle, or the load is too light to measure: lengthen the baseline or the window")
			dyn = 0
		}
		d.IdlePowerW = results.Float(idle)
		d.StaticJ = results.Float(static)
		d.DynamicJ = results.Float(dyn)
		// The baseline and the window are separate measurements: their errors are independent.
		us := in.IdleUncertaintyW[dom.ID] * in.Window.Seconds()
		d.StaticUncertaintyJ = results.Float(us)
		d.DynamicUncertaintyJ = results.Float(quad(bud.u(), us))
	}
	d.Phases = phases(de.Samples, dom, in.Window, in.Prefill, in.Decode)
	d.Timeline = timeline(de.Samples)
	return d
}

// Codes of the checks of a domain's samples over the window.
const (
	CodeTemperatureDrift = "temperature_drift"
	CodeMismatch         = "counter_integration_mismatch"
)

// inWindow returns the samples taken inside the window (edges included).
func inWindow(samples []sdk.Sample, w Interval) []sdk.Sample {
	i := sort.Search(len(samples), func(i int) bool { return samples[i].MonoNS >= w.StartMonoNS })
	j := sort.Search(len(samples), func(i int) bool { return samples[i].MonoNS > w.EndMonoNS })
	return samples[i:j]
}

func hasCode(fs []sdk.Finding, code string) bool {
	for _, f := range fs {
		if f.Code == code {
			return true
		}
	}
	return false
}

// temperatureDrift raises temperature_drift when the temperatures read in the window range over
// more than limit °C (samples without a temperature are skipped).
func temperatureDrift(id string, s []sdk.Sample, limit float64) *results.Finding {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, x := range s {
		if !math.IsNaN(x.TemperatureC) {
			lo, hi = min(lo, x.TemperatureC), max(hi, x.TemperatureC)
		}
	}
	if !(hi-lo > limit) {
		return nil
	}
	return &results.Finding{Code: CodeTemperatureDrift, Severity: results.SeverityWarning, Domain: id,
		Message: fmt.Sprintf("the %s temperature ranged over %.0f °C in the measured window (%.0f to %.0f °C; limit %g °C, validity.temperature_drift_c)", id, hi-lo, lo, hi, limit),
		Advice:  "warm the device up before measuring (a longer warm-up, or lifecycle.thermal_wait_s), so that leakage power is steady"}
}

// mismatch compares a counter with the integral of its instant power over the same span, the
// independent check of docs/methodology.md. s are the window's samples. The span runs from the
// first to the last sample at which the counter changed; the counter's true update instants lie
// up to one sample gap before those samples, so each edge may differ by (gap + one update period)
// × peak power, which is added to the relative tolerance. Without instant power at every sample
// of the span, or with fewer than three changes, there is nothing to compare.
func mismatch(dom sdk.Domain, s []sdk.Sample, threshold float64) *results.Finding {
	first, last := -1, -1
	for i := 1; i < len(s); i++ {
		if s[i].Energy != s[i-1].Energy {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 || last-first < 2 {
		return nil
	}
	var integral, peak float64 // J, W
	for i := first + 1; i <= last; i++ {
		a, b := s[i-1], s[i]
		if math.IsNaN(a.PowerW) || math.IsNaN(b.PowerW) {
			return nil // instant power missing: no independent check
		}
		integral += (a.PowerW + b.PowerW) / 2 * float64(b.MonoNS-a.MonoNS) / 1e9
		peak = max(peak, a.PowerW, b.PowerW)
	}
	if integral <= 0 {
		return nil
	}
	counterJ := float64(s[last].Energy-s[first].Energy) / 1e6
	gapA := time.Duration(s[first].MonoNS - s[first-1].MonoNS)
	gapB := time.Duration(s[last].MonoNS - s[last-1].MonoNS)
	edge := (gapA + gapB + 2*dom.UpdatePeriod).Seconds() * peak
	if math.Abs(counterJ-integral) <= threshold*integral+edge {
		return nil
	}
	return &results.Finding{Code: CodeMismatch, Severity: results.SeverityWarning, Domain: dom.ID,
		Message: fmt.Sprintf("the %s energy counter gives %.3f J but integrated instant power gives %.3f J over the same %.2f s of the window (%+.1f %%; tolerance %g %% (validity.integration_mismatch) + %.3f J edge term)",
			dom.ID, counterJ, integral, float64(s[last].MonoNS-s[first].MonoNS)/1e9, (counterJ-integral)/integral*100, threshold*100, edge),
		Advice: "one of the device's two energy sources is wrong: check the driver version and compare with an external meter; the counter is reported"}
}

// phases sums the domain's energy over the prefill and over the decode intervals. Each interval
// is read off the update-aware curve (At): a first token that falls between two counter updates
// (a prefill shorter than the update period, say) is interpolated between them and its edge-gap
// term widens to the range the energy could take there. Intervals are independent reads
// (quadrature); the coverage term is common to a domain and summed.
func phases(samples []sdk.Sample, dom sdk.Domain, window Interval, prefill, decode []Interval) results.EnergyPhases {
	model := fitPhases(samples, dom.UpdatePeriod, window, prefill, decode)
	sum := func(ivs []Interval) (*float64, *float64, int) {
		if len(ivs) == 0 {
			return nil, nil, 0
		}
		var total budget
		for _, iv := range ivs {
			b, ok := interval(samples, dom, iv.StartMonoNS, iv.EndMonoNS, model)
			if !ok {
				return nil, nil, 0
			}
			total.add(b)
		}
		return results.Float(total.j), results.Float(total.u()), total.between
	}
	var out results.EnergyPhases
	var np, nd int
	out.PrefillJ, out.PrefillUncertaintyJ, np = sum(prefill)
	out.DecodeJ, out.DecodeUncertaintyJ, nd = sum(decode)
	if out.PrefillJ != nil || out.DecodeJ != nil {
		out.Batches = max(len(prefill), len(decode))
	}
	// A batch's first token is read once for its prefill's end and once for its decode's start:
	// count the batches whose first token was interpolated across a flat run.
	out.Interpolated = max(np, nd)
	if out.Interpolated > out.Batches {
		out.Interpolated = out.Batches
	}
	return out
}

func timeline(samples []sdk.Sample) []results.Sample {
	out := make([]results.Sample, len(samples))
	for i, s := range samples {
		out[i] = results.Sample{MonoNS: s.MonoNS, EnergyUJ: uint64(s.Energy), PowerW: finite(s.PowerW), TemperatureC: finite(s.TemperatureC),
			SMClockMHz: finite(s.SMClockMHz), MemoryClockMHz: finite(s.MemoryClockMHz)}
		if s.ReasonsRead {
			out[i].ClockEventReasons = results.Uint64(s.ClockEventReasons)
		}
	}
	return out
}

func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return results.Float(v)
}

// summarize fills the totals from the counted domains.
func summarize(out *results.Energy, in Input, add func(code, sev, domain, msg, advice string)) {
	var total, static, dynamic, prefill, decode float64
	var uTotal, uStatic, uDynamic, uPrefill, uDecode float64 // Σ u² over the counted domains
	counted, withBaseline, withPrefill, withDecode, withU := 0, 0, 0, 0, 0
	kinds := map[string]bool{}
	ptrs := make([]*results.Domain, len(out.Domains))
	for i := range out.Domains {
		ptrs[i] = &out.Domains[i]
	}
	out.CountedDomains = MarkCounted(ptrs)
	for _, d := range out.Domains {
		if !d.Available {
			out.UnavailableDomainsCount++
		}
		if !d.Counted {
			continue
		}
		counted++
		kinds[d.Kind] = true
		total += *d.TotalJ
		if d.UncertaintyJ != nil {
			withU++
			uTotal += *d.UncertaintyJ * *d.UncertaintyJ
		}
		if d.StaticJ != nil {
			withBaseline++
			static += *d.StaticJ
			dynamic += *d.DynamicJ
			uStatic += sq(d.StaticUncertaintyJ)
			uDynamic += sq(d.DynamicUncertaintyJ)
		}
		if d.Phases.PrefillJ != nil {
			withPrefill++
			prefill += *d.Phases.PrefillJ
			uPrefill += sq(d.Phases.PrefillUncertaintyJ)
		}
		if d.Phases.DecodeJ != nil {
			withDecode++
			decode += *d.Phases.DecodeJ
			uDecode += sq(d.Phases.DecodeUncertaintyJ)
		}
	}
	out.CountedDomainKinds = sortedKeys(kinds)
	out.Estimated = EstimatedTotal(out.Domains)
	if counted == 0 {
		var ids []string
		for _, d := range out.Domains {
			if !d.Available {
				ids = append(ids, d.ID)
			}
		}
		why := "no energy plugin is installed or enabled"
		if len(ids) > 0 {
			why = "unavailable: " + strings.Join(ids, ", ") + " (each domain gives its reason)"
		}
		add("no_energy_measured", results.SeverityWarning, "", "no GPU, CPU package, DRAM, node or other domain was measured ("+why+"): figures are throughput and latency only",
			"install an energy plugin that can read this machine (each unmeasured domain above says why it could not be read; docs/plugins.md lists the energy plugins)")
		return
	}
	out.TotalJ = results.Float(total)
	out.JPerOutputToken = results.Ratio(total, float64(in.OutputTokens))
	out.JPerRequest = results.Ratio(total, float64(in.Requests))
	out.TokensPerJ = results.Ratio(float64(in.OutputTokens), total)
	if withU == counted {
		Propagate(out, math.Sqrt(uTotal), in.OutputTokens, in.Requests)
		if f := TooUncertain(out, in.Thresholds.MaxUncertainty); f != nil {
			add(f.Code, f.Severity, f.Domain, f.Message, f.Advice)
		}
	}
	if withBaseline == counted {
		out.StaticJ = results.Float(static)
		out.DynamicJ = results.Float(dynamic)
		out.DynamicJPerOutputToken = results.Ratio(dynamic, float64(in.OutputTokens))
		if withU == counted {
			out.StaticUncertaintyJ = results.Float(math.Sqrt(uStatic))
			out.DynamicUncertaintyJ = results.Float(math.Sqrt(uDynamic))
			out.DynamicJPerOutputTokenUncertainty = results.Ratio(math.Sqrt(uDynamic), float64(in.OutputTokens))
		}
	} else if !in.NoBaseline {
		add("baseline_missing", results.SeverityWarning, "", "no idle baseline for every measured domain, so static and dynamic energy are not split",
			"set lifecycle.baseline_s > 0")
	}
	if withPrefill == counted {
		out.Phases.PrefillJ = results.Float(prefill)
		out.Phases.PrefillUncertaintyJ = results.Float(math.Sqrt(uPrefill))
	}
	if withDecode == counted {
		out.Phases.DecodeJ = results.Float(decode)
		out.Phases.DecodeUncertaintyJ = results.Float(math.Sqrt(uDecode))
	}
	for _, d := range out.Domains {
		if d.Counted {
			out.Phases.Batches = max(out.Phases.Batches, d.Phases.Batches)
			out.Phases.Interpolated = max(out.Phases.Interpolated, d.Phases.Interpolated)
		}
	}
}

func sq(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p * *p
}

// CodeUncertaintyTooHigh is the error finding of a total whose relative uncertainty is above
// validity.max_uncertainty.
const CodeUncertaintyTooHigh = "uncertainty_too_high"

// Propagate sets the uncertainty of e's total to u and carries it to the figures derived from
// the total: J per output token and per request (u ÷ count: counts are exact) and tokens per
// joule (N·u ÷ E², first order), and the relative uncertainty u ÷ E.
func Propagate(e *results.Energy, u float64, outputTokens, requests int64) {
	if e.TotalJ == nil {
		return
	}
	e.UncertaintyJ = results.Float(u)
	e.RelativeUncertainty = results.Ratio(u, *e.TotalJ)
	e.JPerOutputTokenUncertainty = results.Ratio(u, float64(outputTokens))
	e.JPerRequestUncertainty = results.Ratio(u, float64(requests))
	if *e.TotalJ > 0 && outputTokens > 0 {
		e.TokensPerJUncertainty = results.Float(float64(outputTokens) * u / (*e.TotalJ * *e.TotalJ))
	}
}

// TooUncertain returns uncertainty_too_high when e's relative uncertainty is above limit (0: no
// limit).
func TooUncertain(e *results.Energy, limit float64) *results.Finding {
	if limit <= 0 || e.UncertaintyJ == nil || e.TotalJ == nil {
		return nil
	}
	rel := math.Inf(1)
	if *e.TotalJ > 0 {
		rel = *e.UncertaintyJ / *e.TotalJ
	} else if *e.UncertaintyJ == 0 {
		return nil
	}
	if rel <= limit {
		return nil
	}
	return &results.Finding{Code: CodeUncertaintyTooHigh, Severity: results.SeverityError,
		Message: fmt.Sprintf("the total energy %.4g J has a standard uncertainty of %.3g J, %.1f %% of it, above validity.max_uncertainty (%g %%)",
			*e.TotalJ, *e.UncertaintyJ, rel*100, limit*100),
		Advice: "lengthen the measured window (workload.min_window_s), sample faster, or use a meter with a finer counter; docs/methodology.md lists the terms (energy.domains[].uncertainty_terms)"}
}

// WindowFindings returns the findings about the window itself.
func WindowFindings(window Interval, th Thresholds) []results.Finding {
	minS := th.MinWindowS
	if s := window.Seconds(); s < minS {
		return []results.Finding{{Code: "window_too_short", Severity: results.SeverityWarning,
			Message: fmt.Sprintf("the measured window lasted %.3g s, less than %g s", s, minS),
			Advice:  "raise workload.min_window_s so energy counters and clocks resolve the window"}}
	}
	return nil
}

// CountedBetween sums the energy of the counted domains (ids, from MarkCounted; each domain id
// once) over iv, in joules; nil when none was measured. A repeat's energy uses it.
func CountedBetween(ms []*sdk.Measurement, iv Interval, ids []string) *float64 {
	j, _ := CountedBetweenU(ms, iv, ids)
	return j
}

// CountedBetweenU is CountedBetween with the standard uncertainty of the sum (the domains'
// budgets in quadrature).
func CountedBetweenU(ms []*sdk.Measurement, iv Interval, ids []string) (j, u *float64) {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	total, u2, n := 0.0, 0.0, 0
	seen := map[string]bool{}
	for _, m := range ms {
		for _, d := range m.Domains {
			if seen[d.Domain.ID] || !d.Domain.Available || !want[d.Domain.ID] {
				continue
			}
			seen[d.Domain.ID] = true
			if b, ok := interval(d.Samples, d.Domain, iv.StartMonoNS, iv.EndMonoNS, nil); ok {
				total += b.j
				u2 += b.u() * b.u()
				n++
			}
		}
	}
	if n == 0 {
		return nil, nil
	}
	return results.Float(total), results.Float(math.Sqrt(u2))
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
