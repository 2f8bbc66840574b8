package aggregate

import (
	"math"
	"sort"
	"strconv"
	"time"

	hostenergy "github.com/lemctl/lemctl/host/energy"
	"github.com/lemctl/lemctl/host/results"
)

// build computes the aggregate of ws (sorted by rank) per docs/results.md's aggregation rules.
func build(exp string, ws []*worker, worldSize int, c *checks, opts Options) *results.Aggregated {
	first := ws[0].raw
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	a := &results.Aggregated{
		SchemaVersion:  results.SchemaVersion,
		Kind:           results.KindAggregated,
		ExperimentID:   exp,
		ConfigHash:     first.ConfigHash,
		Config:         first.Config,
		Provenance:     first.Provenance,
		Model:          first.Model,
		Engine:         first.Engine,
		Dataset:        first.Dataset,
		WorldSize:      worldSize,
		Ranks:          []int{},
		PartialReasons: []string{},
		Warnings:       []results.Warning{},
		Aggregation: results.AggregationInfo{
			LemctlVersion: opts.LemctlVersion, LemctlCommit: opts.LemctlCommit,
			Strict: !opts.NoStrict, AllowMixed: opts.AllowMixed, RawSHA256: map[string]string{},
		},
		CreatedUnixNS: now().UnixNano(),
	}
	mono := singleHost(ws)
	hosts := map[string]results.Host{}
	var windows []interval
	for _, w := range ws {
		r := w.raw
		a.Ranks = append(a.Ranks, w.rank)
		a.Aggregation.RawSHA256[strconv.Itoa(w.rank)] = w.sha
		hosts[r.Host.Key()] = r.Host
		a.Devices = append(a.Devices, results.Slot{Host: r.Host, Device: r.Device, Rank: w.rank})
		windows = append(windows, wallWindow(r, mono))
		for _, wn := range r.Warnings {
			a.Warnings = append(a.Warnings, results.Warning{Message: wn.Message, Rank: results.IntPtr(w.rank)})
		}
	}
	for _, k := range sortedStrings(hosts) {
		a.Hosts = append(a.Hosts, hosts[k])
	}

	// Wall window: min start → max end; throughput over the union of the windows.
	a.Window = results.Window{StartUnixNS: math.MaxInt64, EndUnixNS: math.MinInt64}
	for _, w := range ws {
		a.Window.StartUnixNS = min(a.Window.StartUnixNS, w.raw.Window.StartUnixNS)
		a.Window.EndUnixNS = max(a.Window.EndUnixNS, w.raw.Window.EndUnixNS)
	}
	a.Window.DurationS = float64(a.Window.EndUnixNS-a.Window.StartUnixNS) / 1e9
	_, unionNS := union(windows)
	unionS := float64(unionNS) / 1e9
	a.Window.UnionS = results.Float(unionS)

	// Sums of work.
	batch := first.Workload.BatchSize
	var flopsTotal float64
	flopsKnown, flopsMethod := true, first.FLOPs.Method
	var lat results.LatencySamples
	for _, w := range ws {
		r := w.raw
		a.Workload.Requests += r.Workload.Requests
		a.Workload.InputTokens += r.Workload.InputTokens
		a.Workload.OutputTokens += r.Workload.OutputTokens
		a.Workload.Passes += r.Workload.Passes
		a.Workload.TruncatedPrompts += r.Workload.TruncatedPrompts
		a.Workload.ContextExceededPrompts += r.Workload.ContextExceededPrompts
		a.Workload.TruncatedTokens = sumKnown(a.Workload.TruncatedTokens, r.Workload.TruncatedTokens, w == ws[0])
		a.Workload.Repeats = max(a.Workload.Repeats, r.Workload.Repeats)
		if batch != nil && (r.Workload.BatchSize == nil || *r.Workload.BatchSize != *batch) {
			batch = nil // differs between workers: no single batch size
		}
		if r.FLOPs.Total == nil {
			flopsKnown = false
		} else {
			flopsTotal += *r.FLOPs.Total
		}
		if r.FLOPs.Method != flopsMethod {
			flopsMethod = "mixed"
		}
		lat.Add(r.Requests)
	}
	if batch != nil {
		b := *batch
		a.Workload.BatchSize = &b
	}
	a.LatencyMS = lat.Summary()
	wl := a.Workload
	a.Throughput = results.Throughput{Rates: results.RatesOf(wl, unionS)}
	for _, w := range ws {
		r := w.raw
		d := float64(r.Window.EndMonoNS-r.Window.StartMonoNS) / 1e9
		a.Throughput.PerWorker = append(a.Throughput.PerWorker, results.WorkerThroughput{
			Rank: w.rank, DurationS: d, Rates: results.RatesOf(r.Workload, d)})
	}
	if flopsKnown {
		a.FLOPs.Total = results.Float(flopsTotal)
		a.FLOPs.PerOutputToken = results.Ratio(flopsTotal, float64(wl.OutputTokens))
	}
	a.FLOPs.Method = flopsMethod

	groups := groupDomains(ws)
	a.Energy = energy(groups, ws, wl, c)
	if g, src, ok := carbonIntensity(first.Config); ok {
		a.Energy.CO2e = hostenergy.CO2e(a.Energy.TotalJ, wl.Requests, wl.OutputTokens, g, src)
	}
	a.Load = load(ws, unionS)
	for _, w := range ws {
		if why := w.raw.Energy.Phases.NotAttributed; why != "" && a.Energy.Phases.PrefillJ == nil && a.Energy.Phases.DecodeJ == nil {
			a.Energy.Phases.NotAttributed = why
			break
		}
	}
	// A rank whose model ran on another machine: this machine's energy is not the model's, and
	// no figure divides it by the model's work.
	for _, w := range ws {
		if why := w.raw.Energy.NotAttributed; why != "" {
			a.Energy.NotAttribute(why)
			break
		}
	}
	a.Memory = memory(ws)
	a.Overhead = overhead(ws)
	a.Environment = environment(ws)
	a.Repeats, a.RepeatStats = repeats(ws, groups, mono)
	if a.Energy.NotAttributed != "" {
		for i := range a.Repeats {
			a.Repeats[i].JPerOutputToken = nil
		}
		delete(a.RepeatStats, "j_per_output_token")
	}

	// Validity: the workers' findings tagged with their rank, then the aggregation's own.
	a.Validity.Findings = []results.Finding{}
	experimentWide := map[string]bool{}
	for _, w := range ws {
		for _, f := range w.raw.Validity.Findings {
			if f.Rank == nil && results.ExperimentWide(f.Code) { // every rank has it: keep one
				if k := f.Code + "\x00" + f.Message; !experimentWide[k] {
					experimentWide[k] = true
					a.Validity.Findings = append(a.Validity.Findings, f)
				}
				continue
			}
			f.Rank = results.IntPtr(w.rank)
			a.Validity.Findings = append(a.Validity.Findings, f)
		}
	}
	for _, f := range c.failures {
		a.Validity.Findings = append(a.Validity.Findings, f)
		a.PartialReasons = append(a.PartialReasons, f.Code+": "+f.Message)
	}
	// One rule decides validity everywhere: the findings and the health of every domain, each
	// rank's view included (a counter reset on one worker makes the aggregate invalid).
	a.Validity = results.ValidityOf(append(a.Validity.Findings, c.findings...), a.Energy.Domains)
	for _, w := range ws {
		if !w.raw.Validity.Valid && results.ValidityOf(w.raw.Validity.Findings, w.raw.Energy.Domains).Valid {
			// The raw result says invalid without an error finding to show for it: keep its verdict.
			a.Validity.Valid = false
			a.Validity.Findings = append(a.Validity.Findings, results.Finding{Code: CodeRankInvalid, Severity: results.SeverityError,
				Rank: results.IntPtr(w.rank), Message: "the raw result says it is invalid, but lists no error finding or domain health error"})
		}
	}
	a.Partial = len(c.failures) > 0
	return a
}

// domainGroup is every worker's view of one domain of one host.
type domainGroup struct {
	host    results.Host
	id      string
	counted bool     // in energy.total_j under host/energy's containment rule
	members []member // available views, by rank
	absent  []member // unavailable views, by rank
}

type member struct {
	rank int
	raw  *results.Raw
	dom  *results.Domain
}

// groupDomains deduplicates domains by (host, domain id), sorted by host then id.
func groupDomains(ws []*worker) []*domainGroup {
	byKey := map[string]*domainGroup{}
	for _, w := range ws {
		for i := range w.raw.Energy.Domains {
			d := &w.raw.Energy.Domains[i]
			key := w.raw.Host.Key() + "\x00" + d.ID
			g := byKey[key]
			if g == nil {
				g = &domainGroup{host: w.raw.Host, id: d.ID}
				byKey[key] = g
			}
			m := member{rank: w.rank, raw: w.raw, dom: d}
			if d.Available {
				g.members = append(g.members, m)
			} else {
				g.absent = append(g.absent, m)
			}
		}
	}
	out := make([]*domainGroup, 0, len(byKey))
	for _, k := range sortedStrings(byKey) {
		out = append(out, byKey[k])
	}
	return out
}

// groupEnergy returns the energy (J) of a group over the union of the given windows of its
// members, and the union's length (s). window picks each member's interval (nil: not in it).
// ok is false when the group cannot be stitched because a member has no timeline; then the
// energy is the largest single view (a lower bound) and the caller warns.
func groupEnergy(g *domainGroup, window func(m member) *interval) (j, unionS float64, stitched, ok bool) {
	var views []view
	var ivs []interval
	noTimeline := false
	for _, m := range g.members {
		iv := window(m)
		if iv == nil {
			continue
		}
		if !usableTimeline(m.dom.Timeline) {
			noTimeline = true
		}
		views = append(views, view{rank: m.rank, start: iv.start, end: iv.end, timeline: m.dom.Timeline})
		ivs = append(ivs, *iv)
	}
	_, uns := union(ivs)
	unionS = float64(uns) / 1e9
	if len(views) == 0 {
		return 0, 0, false, true
	}
	if noTimeline {
		if len(views) == 1 {
			for _, m := range g.members {
				if m.rank == views[0].rank && m.dom.TotalJ != nil {
					return *m.dom.TotalJ, unionS, false, true
				}
			}
		}
		best := 0.0
		for _, m := range g.members {
			if m.dom.TotalJ != nil {
				best = math.Max(best, *m.dom.TotalJ)
			}
		}
		return best, unionS, false, len(views) == 1
	}
	uj, _ := stitch(views)
	return uj / 1e6, unionS, len(views) > 1, true
}

// usableTimeline reports whether a timeline can be stitched: at least two samples, time strictly
// increasing and energy never decreasing (a meter corrects wraps and resets before it reports).
func usableTimeline(tl []results.Sample) bool {
	if len(tl) < 2 {
		return false
	}
	for i := 1; i < len(tl); i++ {
		if tl[i].MonoNS <= tl[i-1].MonoNS || tl[i].EnergyUJ < tl[i-1].EnergyUJ {
			return false
		}
	}
	return true
}

// rankedHealth is a member's domain health, each finding tagged with the member's rank.
func rankedHealth(m member) []results.Finding {
	var out []results.Finding
	for _, h := range m.dom.Health {
		h.Rank = results.IntPtr(m.rank)
		out = append(out, h)
	}
	return out
}

func monoWindow(m member) *interval {
	return &interval{m.raw.Window.StartMonoNS, m.raw.Window.EndMonoNS}
}

// energy deduplicates every domain by (host, id) and takes its energy once over the union of the
// windows of the workers that saw it.
func energy(groups []*domainGroup, ws []*worker, wl results.Workload, c *checks) results.Energy {
	e := results.Energy{Domains: []results.Domain{}}
	for _, g := range groups {
		var d results.Domain
		if len(g.members) == 0 {
			d = *g.absent[0].dom
			d.Timeline = nil
			d.TotalJ, d.StaticJ, d.DynamicJ, d.IdlePowerW = nil, nil, nil, nil
			d.UncertaintyJ, d.UncertaintyTerms, d.StaticUncertaintyJ, d.DynamicUncertaintyJ = nil, nil, nil, nil
			d.CounterUpdates = nil
			d.Phases = results.EnergyPhases{}
			d.Health = []results.Finding{}
			for _, m := range g.absent {
				d.Ranks = append(d.Ranks, m.rank)
				d.Health = append(d.Health, rankedHealth(m)...)
			}
			e.UnavailableDomainsCount++
		} else {
			d = *g.members[0].dom
			d.Timeline = nil
			d.CounterUpdates = nil
			j, unionS, stitched, ok := groupEnergy(g, monoWindow)
			if len(g.members) == 1 && g.members[0].dom.TotalJ != nil {
				// One worker saw the domain: its own total over its window, read as the worker
				// read it (the update-aware curve of host/energy, docs/methodology.md), not again.
				j = *g.members[0].dom.TotalJ
			}
			if !ok {
				c.warn(CodeEnergyNotStitched, nil, "domain %s on %s: seen by %d workers but not every one has a usable timeline (≥ 2 samples, increasing time, non-decreasing energy); its energy is the largest single worker's (a lower bound)", g.id, g.host.Hostname, len(g.members))
			}
			d.TotalJ = results.Float(j)
			d.Stitched = stitched
			var idle, idleU []float64
			resolution, u2, withU := 0.0, 0.0, true
			d.Health = []results.Finding{}
			for _, m := range g.members {
				d.Ranks = append(d.Ranks, m.rank)
				if m.dom.IdlePowerW != nil {
					idle = append(idle, *m.dom.IdlePowerW)
					if m.dom.StaticUncertaintyJ != nil && m.raw.Window.DurationS > 0 {
						idleU = append(idleU, *m.dom.StaticUncertaintyJ/m.raw.Window.DurationS)
					}
				}
				if m.dom.UncertaintyJ == nil {
					withU = false
				} else {
					u2 += *m.dom.UncertaintyJ * *m.dom.UncertaintyJ
				}
				if m.dom.ResolutionJ != nil {
					resolution = math.Max(resolution, *m.dom.ResolutionJ)
				}
				d.Health = append(d.Health, rankedHealth(m)...)
			}
			for _, m := range g.absent {
				d.Ranks = append(d.Ranks, m.rank)
				d.Health = append(d.Health, rankedHealth(m)...)
			}
			sort.Ints(d.Ranks)
			if g.members[0].dom.ResolutionJ != nil {
				d.ResolutionJ = results.Float(resolution)
			}
			d.IdlePowerW, d.StaticJ, d.DynamicJ = nil, nil, nil
			d.StaticUncertaintyJ, d.DynamicUncertaintyJ = nil, nil
			if len(g.members) > 1 {
				// Stitched from several workers' curves: the pieces are read at the members'
				// window edges, so the members' budgets in quadrature bound it.
				d.UncertaintyJ, d.UncertaintyTerms = nil, nil
				if withU {
					d.UncertaintyJ = results.Float(math.Sqrt(u2))
					d.UncertaintyMethod = "stitched: the workers' budgets in quadrature"
				}
			}
			if len(idle) > 0 {
				// Every worker measured the same domain's idle power during the shared baseline;
				// their mean is the best estimate.
				var s float64
				for _, v := range idle {
					s += v
				}
				p := s / float64(len(idle))
				st := p * unionS
				dyn := j - st
				if dyn < 0 {
					c.warn(CodeDynamicNegative, nil, "domain %s on %s: total %.3f J < static %.3f J; dynamic floored at 0", g.id, g.host.Hostname, j, st)
					dyn = 0
				}
				d.IdlePowerW, d.StaticJ, d.DynamicJ = results.Float(p), results.Float(st), results.Float(dyn)
				if len(idleU) == len(idle) && d.UncertaintyJ != nil {
					// The workers' idle powers come from one shared baseline: their uncertainties
					// are correlated, so their mean is used, not their quadrature.
					var su float64
					for _, v := range idleU {
						su += v / float64(len(idleU))
					}
					d.StaticUncertaintyJ = results.Float(su * unionS)
					d.DynamicUncertaintyJ = results.Float(math.Hypot(*d.UncertaintyJ, su*unionS))
				}
			}
			// Phase energy of a domain several workers shared cannot be split between them.
			if len(g.members) > 1 {
				d.Phases = results.EnergyPhases{}
			}
		}
		h := g.host
		d.Host = &h
		e.Domains = append(e.Domains, d)
	}

	// The containment rule picks the counted domains of each host; total_j sums them over hosts.
	byHost := map[string][]*results.Domain{}
	for i := range e.Domains {
		k := e.Domains[i].Host.Key()
		byHost[k] = append(byHost[k], &e.Domains[i])
	}
	var total, static, prefill, decode float64
	var uTotal, uStatic, uPrefill, uDecode float64 // Σ u² over the counted domains (independent devices)
	counted, staticKnown, phasesKnown, uKnown, staticUKnown := false, true, true, true, true
	kinds := map[string]bool{}
	for _, k := range sortedStrings(byHost) {
		for _, id := range hostenergy.MarkCounted(byHost[k]) {
			if len(byHost) > 1 {
				id = byHost[k][0].Host.Hostname + "/" + id
			}
			e.CountedDomains = append(e.CountedDomains, id)
		}
	}
	for i, d := range e.Domains {
		groups[i].counted = d.Counted
		if !d.Counted {
			continue
		}
		counted = true
		kinds[d.Kind] = true
		total += *d.TotalJ
		if d.UncertaintyJ == nil {
			uKnown = false
		} else {
			uTotal += *d.UncertaintyJ * *d.UncertaintyJ
		}
		if d.StaticJ == nil {
			staticKnown = false
		} else {
			static += *d.StaticJ
			if d.StaticUncertaintyJ == nil {
				staticUKnown = false
			} else {
				uStatic += *d.StaticUncertaintyJ * *d.StaticUncertaintyJ
			}
		}
		if d.Phases.PrefillJ == nil || d.Phases.DecodeJ == nil {
			phasesKnown = false
		} else {
			prefill += *d.Phases.PrefillJ
			decode += *d.Phases.DecodeJ
			uPrefill += sqOf(d.Phases.PrefillUncertaintyJ)
			uDecode += sqOf(d.Phases.DecodeUncertaintyJ)
		}
	}
	e.CountedDomainKinds = append(e.CountedDomainKinds, sortedStrings(kinds)...)
	e.Estimated = hostenergy.EstimatedTotal(e.Domains)
	if !counted {
		return e
	}
	out, reqs := float64(wl.OutputTokens), float64(wl.Requests)
	e.TotalJ = results.Float(total)
	e.JPerOutputToken = results.Ratio(total, out)
	e.JPerRequest = results.Ratio(total, reqs)
	e.TokensPerJ = results.Ratio(out, total)
	if uKnown {
		hostenergy.Propagate(&e, math.Sqrt(uTotal), wl.OutputTokens, wl.Requests)
	}
	if staticKnown {
		dyn := math.Max(0, total-static)
		e.StaticJ = results.Float(static)
		e.DynamicJ = results.Float(dyn)
		e.DynamicJPerOutputToken = results.Ratio(dyn, out)
		if uKnown && staticUKnown {
			e.StaticUncertaintyJ = results.Float(math.Sqrt(uStatic))
			ud := math.Sqrt(uTotal + uStatic)
			e.DynamicUncertaintyJ = results.Float(ud)
			e.DynamicJPerOutputTokenUncertainty = results.Ratio(ud, out)
		}
	}
	if phasesKnown {
		e.Phases = results.EnergyPhases{PrefillJ: results.Float(prefill), DecodeJ: results.Float(decode)}
		if uKnown {
			e.Phases.PrefillUncertaintyJ = results.Float(math.Sqrt(uPrefill))
			e.Phases.DecodeUncertaintyJ = results.Float(math.Sqrt(uDecode))
		}
		for _, d := range e.Domains {
			if d.Counted {
				e.Phases.Batches += d.Phases.Batches
				e.Phases.Interpolated += d.Phases.Interpolated
			}
		}
	}
	return e
}

func sqOf(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p * *p
}

// memory takes the peak per device (max over the workers on it) and sums over devices.
func memory(ws []*worker) results.Memory {
	type dev struct {
		host        results.Host
		name        string
		peak, model *int64
	}
	byKey := map[string]*dev{}
	for _, w := range ws {
		r := w.raw
		name := deviceID(r.Device)
		if r.Device.Kind == "cpu" || r.Device.Kind == "" {
			name = "slot:" + r.Device.Slot // CPU workers are separate processes: one "device" each
		}
		key := r.Host.Key() + "|" + name
		d := byKey[key]
		if d == nil {
			d = &dev{host: r.Host, name: name}
			byKey[key] = d
		}
		d.peak = maxPtr(d.peak, r.Memory.PeakBytes)
		d.model = maxPtr(d.model, r.Memory.ModelBytes)
	}
	m := results.Memory{}
	var peak, model int64
	peakKnown, modelKnown := false, false
	for _, k := range sortedStrings(byKey) {
		d := byKey[k]
		m.Devices = append(m.Devices, results.DeviceMemory{Host: d.host, Device: d.name, PeakBytes: d.peak, ModelBytes: d.model})
		if d.peak != nil {
			peak += *d.peak
			peakKnown = true
		}
		if d.model != nil {
			model += *d.model
			modelKnown = true
		}
	}
	if peakKnown {
		m.PeakBytes = results.Int64(peak)
	}
	if modelKnown {
		m.ModelBytes = results.Int64(model)
	}
	return m
}

func maxPtr(a, b *int64) *int64 {
	switch {
	case b == nil:
		return a
	case a == nil || *b > *a:
		v := *b
		return &v
	}
	return a
}

// overhead sums the meters' CPU time and divides by the workers' summed window time.
func overhead(ws []*worker) results.Overhead {
	var cpu, window float64
	known := false
	for _, w := range ws {
		window += float64(w.raw.Window.EndMonoNS-w.raw.Window.StartMonoNS) / 1e9
		if w.raw.Overhead.MeterCPUS != nil {
			cpu += *w.raw.Overhead.MeterCPUS
			known = true
		}
	}
	if !known {
		return results.Overhead{}
	}
	return results.Overhead{MeterCPUS: results.Float(cpu), Share: results.Ratio(cpu, window)}
}

// environment groups the environments by host: the lowest rank's facts, the union of devices.
func environment(ws []*worker) results.AggEnvironment {
	byHost := map[string]*results.HostEnvironment{}
	devSeen := map[string]bool{}
	for _, w := range ws {
		r := w.raw
		k := r.Host.Key()
		h := byHost[k]
		if h == nil {
			h = &results.HostEnvironment{Host: r.Host, Facts: r.Environment.Facts, Devices: []results.DeviceEnvironment{}}
			byHost[k] = h
		}
		h.Ranks = append(h.Ranks, w.rank)
		for _, d := range r.Environment.Devices {
			if !devSeen[k+"\x00"+d.ID] {
				devSeen[k+"\x00"+d.ID] = true
				h.Devices = append(h.Devices, d)
			}
		}
	}
	env := results.AggEnvironment{Hosts: []results.HostEnvironment{}}
	for _, k := range sortedStrings(byHost) {
		h := byHost[k]
		sort.Slice(h.Devices, func(i, j int) bool { return h.Devices[i].ID < h.Devices[j].ID })
		env.Hosts = append(env.Hosts, *h)
	}
	return env
}

// repeats gives per-repeat totals over the workers and their statistics. Repeat k's energy is
// each counted domain stitched over the union of its workers' repeat-k windows.
func repeats(ws []*worker, groups []*domainGroup, mono bool) ([]results.Repeat, map[string]*results.Stats) {
	type idx struct{ rank, k int }
	reps := map[idx]*results.Repeat{}
	indices := map[int]bool{}
	for _, w := range ws {
		for i := range w.raw.Repeats {
			r := &w.raw.Repeats[i]
			reps[idx{w.rank, r.Index}] = r
			indices[r.Index] = true
		}
	}
	if len(indices) == 0 {
		return []results.Repeat{}, map[string]*results.Stats{}
	}
	var out []results.Repeat
	for _, k := range sortedKeys(indices) {
		rep := results.Repeat{Index: k}
		rep.Window.StartUnixNS, rep.Window.EndUnixNS = math.MaxInt64, math.MinInt64
		rep.Window.StartMonoNS, rep.Window.EndMonoNS = math.MaxInt64, math.MinInt64
		var ivs []interval
		var lat results.LatencySamples
		for _, w := range ws {
			r := reps[idx{w.rank, k}]
			if r == nil {
				continue
			}
			rep.Requests += r.Requests
			rep.InputTokens += r.InputTokens
			rep.OutputTokens += r.OutputTokens
			rep.Window.StartUnixNS = min(rep.Window.StartUnixNS, r.Window.StartUnixNS)
			rep.Window.EndUnixNS = max(rep.Window.EndUnixNS, r.Window.EndUnixNS)
			rep.Window.StartMonoNS = min(rep.Window.StartMonoNS, r.Window.StartMonoNS)
			rep.Window.EndMonoNS = max(rep.Window.EndMonoNS, r.Window.EndMonoNS)
			ivs = append(ivs, windowOf(r.Window, mono))
			for i := range w.raw.Requests {
				if w.raw.Requests[i].Repeat == k {
					lat.Add(w.raw.Requests[i : i+1])
				}
			}
		}
		if !mono {
			rep.Window.StartMonoNS, rep.Window.EndMonoNS = 0, 0 // monotonic clocks of several hosts do not compare
		}
		_, uns := union(ivs)
		rep.Window.DurationS = float64(uns) / 1e9
		rep.OutputTokensPerS = results.Ratio(float64(rep.OutputTokens), rep.Window.DurationS)
		var ej, u2 float64
		counted, known, withU := false, true, true
		for _, w := range ws {
			if r := reps[idx{w.rank, k}]; r != nil {
				if r.EnergyUncertaintyJ == nil {
					withU = false
				} else {
					// Ranks measure separate devices (a shared domain's edges are counted once per
					// rank: a bound): their errors are independent.
					u2 += *r.EnergyUncertaintyJ * *r.EnergyUncertaintyJ
				}
			}
		}
		for _, g := range groups {
			if !g.counted {
				continue
			}
			for _, m := range g.members {
				if reps[idx{m.rank, k}] != nil && !usableTimeline(m.dom.Timeline) {
					known = false // a repeat's share of a total cannot be told without a timeline
				}
			}
			j, _, _, _ := groupEnergy(g, func(m member) *interval {
				r := reps[idx{m.rank, k}]
				if r == nil {
					return nil
				}
				return &interval{r.Window.StartMonoNS, r.Window.EndMonoNS}
			})
			ej += j
			counted = true
		}
		if counted && known {
			rep.EnergyJ = results.Float(ej)
			rep.JPerOutputToken = results.Ratio(ej, float64(rep.OutputTokens))
			if withU {
				rep.EnergyUncertaintyJ = results.Float(math.Sqrt(u2))
			}
		}
		l := lat.Summary()
		rep.TTFTP50MS, rep.ITLP50MS = l.TTFT.P50, l.ITL.P50
		out = append(out, rep)
	}
	stats := map[string]*results.Stats{}
	figures := map[string]func(r results.Repeat) *float64{
		"output_tokens_per_s": func(r results.Repeat) *float64 { return r.OutputTokensPerS },
		"energy_j":            func(r results.Repeat) *float64 { return r.EnergyJ },
		"j_per_output_token":  func(r results.Repeat) *float64 { return r.JPerOutputToken },
		"ttft_p50_ms":         func(r results.Repeat) *float64 { return r.TTFTP50MS },
		"itl_p50_ms":          func(r results.Repeat) *float64 { return r.ITLP50MS },
		"output_tokens":       func(r results.Repeat) *float64 { return results.Float(float64(r.OutputTokens)) },
	}
	for name, get := range figures {
		var vals []float64
		for _, r := range out {
			if v := get(r); v != nil {
				vals = append(vals, *v)
			}
		}
		if len(vals) == len(out) {
			stats[name] = results.NewStats(vals)
		}
	}
	RepeatUncertainty(out, stats)
	return out, stats
}

func sortedStrings[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// sumKnown adds v to sum; the sum is null once any term is (first: v is the first term).
func sumKnown(sum, v *int64, first bool) *int64 {
	if v == nil || (sum == nil && !first) {
		return nil
	}
	if first {
		return results.Int64(*v)
	}
	return results.Int64(*sum + *v)
}

// RepeatUncertainty adds the repeats' within-window uncertainties to the energy figures of stats
// (results.Stats.WithWithin): energy_j from each repeat's energy_uncertainty_j, j_per_output_token
// from the same ÷ the repeat's output tokens. A figure is left alone unless every repeat has one.
func RepeatUncertainty(reps []results.Repeat, stats map[string]*results.Stats) {
	var ue, ut []float64
	for _, r := range reps {
		if r.EnergyUncertaintyJ == nil {
			return
		}
		ue = append(ue, *r.EnergyUncertaintyJ)
		if r.OutputTokens > 0 {
			ut = append(ut, *r.EnergyUncertaintyJ/float64(r.OutputTokens))
		}
	}
	stats["energy_j"].WithWithin(ue)
	stats["j_per_output_token"].WithWithin(ut)
}
