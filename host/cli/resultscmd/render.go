package resultscmd

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lemctl/lemctl/host/cliutil/render"
	"github.com/lemctl/lemctl/host/results"
)

const na = "—" // a figure that was not measured

// WriteAggregated prints an aggregated result as a table for humans.
func WriteAggregated(w io.Writer, a *results.Aggregated) error {
	tw := render.NewTabWriter(w)
	state := "complete"
	if a.Partial {
		state = "PARTIAL"
	}
	row(tw, "experiment", fmt.Sprintf("%s (aggregated: ranks %s of %d, %s)", a.ExperimentID, ints(a.Ranks), a.WorldSize, state))
	header(tw, a.ConfigHash, a.Model, a.Engine, a.Dataset)
	union := na
	if a.Window.UnionS != nil {
		union = fmt.Sprintf("%.3f s", *a.Window.UnionS)
	}
	row(tw, "window", fmt.Sprintf("%s → %s (%.3f s; union of the workers' windows %s)",
		wall(a.Window.StartUnixNS), wall(a.Window.EndUnixNS), a.Window.DurationS, union))
	work(tw, a.Workload, a.Throughput, a.LatencyMS)
	loadRows(tw, a.Load)
	energy(tw, a.Energy, a.FLOPs)
	overhead(tw, a.Overhead)
	all := results.WithHealth(a.Validity.Findings, a.Energy.Domains)
	validity(tw, results.Verdict(a.Validity.Valid, all, a.Warnings), a.PartialReasons)
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := domains(w, a.Energy.Domains, true); err != nil {
		return err
	}
	if len(a.Repeats) > 1 {
		if err := repeats(w, a.Repeats, a.RepeatStats); err != nil {
			return err
		}
	}
	return WriteFindings(w, "", all, a.Warnings)
}

// WriteRaw prints one worker's raw result as a table for humans.
func WriteRaw(w io.Writer, r *results.Raw) error {
	tw := render.NewTabWriter(w)
	row(tw, "experiment", fmt.Sprintf("%s (raw: rank %d of %d)", r.ExperimentID, r.Rank, r.WorldSize))
	row(tw, "host", fmt.Sprintf("%s (boot %s), device %s (%s)", r.Host.Hostname, r.Host.BootID, r.Device.Slot, deviceName(r.Device)))
	header(tw, r.ConfigHash, r.Model, r.Engine, r.Dataset)
	row(tw, "window", fmt.Sprintf("%s → %s (%.3f s)", wall(r.Window.StartUnixNS), wall(r.Window.EndUnixNS), r.Window.DurationS))
	work(tw, r.Workload, r.Throughput, r.LatencyMS)
	loadRows(tw, r.Load)
	energy(tw, r.Energy, r.FLOPs)
	overhead(tw, r.Overhead)
	all := results.WithHealth(r.Validity.Findings, r.Energy.Domains)
	for i := range all {
		if all[i].Rank == nil {
			all[i].Rank = results.IntPtr(r.Rank) // everything in a raw result is its rank's
		}
	}
	validity(tw, results.Verdict(r.Validity.Valid, all, r.Warnings), nil)
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := domains(w, r.Energy.Domains, false); err != nil {
		return err
	}
	return WriteFindings(w, "", all, r.Warnings)
}

func row(tw io.Writer, key, value string) { fmt.Fprintf(tw, "%s\t%s\n", key, value) }

func header(tw io.Writer, hash string, m results.Model, e results.Engine, d results.Dataset) {
	row(tw, "config hash", hash)
	params := na
	if m.Parameters != nil {
		params = strconv.FormatInt(*m.Parameters, 10)
	}
	model := fmt.Sprintf("%s (%s, %s parameters", m.Ref, orNA(m.Architecture), params)
	if m.Synthetic {
		model += ", synthetic"
	}
	row(tw, "model", model+")")
	eng := fmt.Sprintf("%s %s (%s)", e.Plugin, e.Version, orNA(e.ExecutionProvider))
	if e.Endpoint != "" {
		where := "this machine"
		if e.Remote {
			where = "another machine"
		}
		eng += fmt.Sprintf(", serving at %s (%s)", e.Endpoint, where)
	}
	row(tw, "engine", eng)
	row(tw, "dataset", fmt.Sprintf("%s (%d prompts)", orNA(d.Name), d.Prompts))
}

func work(tw io.Writer, wl results.Workload, t results.Throughput, l results.Latency) {
	row(tw, "requests", strconv.FormatInt(wl.Requests, 10))
	batch := na
	if wl.BatchSize != nil {
		batch = strconv.Itoa(*wl.BatchSize)
	}
	row(tw, "tokens", fmt.Sprintf("input %d, output %d (batch size %s, %d repeat(s))", wl.InputTokens, wl.OutputTokens, batch, wl.Repeats))
	row(tw, "throughput", fmt.Sprintf("%s output tok/s, %s req/s, %s total tok/s",
		num(t.OutputTokensPerS, 2), num(t.RequestsPerS, 3), num(t.TotalTokensPerS, 2)))
	row(tw, "TTFT", fmt.Sprintf("p50 %s, p90 %s, p99 %s (%d requests)", msNum(l.TTFT.P50), msNum(l.TTFT.P90), msNum(l.TTFT.P99), l.TTFT.Count))
	timed := ""
	switch l.TimedBy {
	case "chunks":
		timed = ", timed by streamed chunks: a chunk may hold several tokens"
	case "tokens+chunks":
		timed = ", timed by tokens, and by streamed chunks where no per-token time was given"
	}
	row(tw, "ITL", fmt.Sprintf("p50 %s, p90 %s, p99 %s (%d intervals%s)", msNum(l.ITL.P50), msNum(l.ITL.P90), msNum(l.ITL.P99), l.ITL.Count, timed))
	row(tw, "E2E", fmt.Sprintf("p50 %s, p90 %s, p99 %s", msNum(l.E2E.P50), msNum(l.E2E.P90), msNum(l.E2E.P99)))
}

// loadRows shows a constant or poisson load (docs/serving.md): arrivals, rates, concurrency,
// failures, send lateness, how tokens were counted and the steady state.
func loadRows(tw io.Writer, l *results.Load) {
	if l == nil {
		return
	}
	path := "continuous batching (Serve)"
	if l.Path == "static_fallback" {
		path = "static batches: the engine has no Serve"
	}
	row(tw, "load", fmt.Sprintf("%s arrivals, target %.3g req/s, achieved %s req/s (sends), completed %s req/s; %s",
		l.Arrival, l.TargetRatePerS, num(l.AchievedRatePerS, 3), num(l.CompletedRatePerS, 3), path))
	row(tw, "concurrency", fmt.Sprintf("target (max) %d, mean %s, peak %d; %d of %d sends late (> 1 ms), lateness p50 %s, max %s",
		l.MaxConcurrency, num(l.MeanConcurrency, 2), l.PeakConcurrency, l.LateSends, l.Sent, msNum(l.SendLateMS.P50), msNum(l.SendLateMS.Max)))
	fail := "none"
	if l.Failed > 0 {
		fail = l.FailureSummary()
	}
	row(tw, "failures", fail)
	var srcs []string
	for _, k := range slices.Sorted(maps.Keys(l.TokenCount)) {
		srcs = append(srcs, fmt.Sprintf("%s %d", k, l.TokenCount[k]))
	}
	counted := "output tokens counted by: " + strings.Join(srcs, ", ")
	if l.MeanBatch != nil {
		counted += fmt.Sprintf("; mean running batch %.2f", *l.MeanBatch)
	}
	row(tw, "token count", counted)
	ss := l.SteadyState
	if !ss.Reached {
		row(tw, "steady state", "not reached: "+orNA(ss.Reason))
		return
	}
	line := fmt.Sprintf("%.3f s (%.3f s of it with max_concurrency %d in flight), %d output tokens, %s output tok/s",
		ss.DurationS, ss.AtTargetS, l.MaxConcurrency, ss.OutputTokens, num(ss.TokensPerS, 2))
	if ss.EnergyJ != nil {
		line += fmt.Sprintf(", %s J, %s J/output token", pm(ss.EnergyJ, ss.EnergyUncertaintyJ, 3), num(ss.JPerOutputToken, 4))
	}
	row(tw, "steady state", line)
}

func energy(tw io.Writer, e results.Energy, f results.FLOPs) {
	if e.TotalJ == nil {
		row(tw, "energy", "not measured (no GPU, CPU package, DRAM, node or other domain was measured; the domains below say why)")
	} else {
		basis := strings.Join(e.CountedDomainKinds, " + ")
		if len(e.CountedDomains) > 0 {
			basis = "counted: " + strings.Join(e.CountedDomains, " + ") + " [" + basis + "]"
		}
		if basis != "" {
			basis = " (" + basis + ")"
		}
		label := ""
		if e.Estimated {
			label = "ESTIMATED (no energy counter: CPU time × watts per core, energy_estimated) "
		}
		row(tw, "energy", fmt.Sprintf("%s%s J total%s, static %s J, dynamic %s J", label, pm(e.TotalJ, e.UncertaintyJ, 3), basis,
			pm(e.StaticJ, e.StaticUncertaintyJ, 3), pm(e.DynamicJ, e.DynamicUncertaintyJ, 3)))
		if e.NotAttributed != "" {
			row(tw, "J/output token", "not attributed: "+e.NotAttributed)
		} else {
			row(tw, "J/output token", fmt.Sprintf("%s (dynamic %s), %s J/request, %s tokens/J",
				pm(e.JPerOutputToken, e.JPerOutputTokenUncertainty, 4), pm(e.DynamicJPerOutputToken, e.DynamicJPerOutputTokenUncertainty, 4),
				pm(e.JPerRequest, e.JPerRequestUncertainty, 3), pm(e.TokensPerJ, e.TokensPerJUncertainty, 4)))
		}
		u := "not stated (a result from before uncertainty budgets)"
		if e.UncertaintyJ != nil {
			u = fmt.Sprintf("± figures are standard uncertainties (1σ; 95 %% ≈ ± 2σ); total %s J, %s of it (docs/methodology.md, \"Uncertainty budget\")",
				gnum(e.UncertaintyJ), pct(e.RelativeUncertainty))
		}
		row(tw, "uncertainty", u)
		ph := "not measured (no batch phases, or a counted domain could not be split)"
		if e.Phases.NotAttributed != "" {
			ph = e.Phases.NotAttributed
		}
		if e.Phases.PrefillJ != nil || e.Phases.DecodeJ != nil {
			ph = fmt.Sprintf("prefill %s J, decode %s J", pm(e.Phases.PrefillJ, e.Phases.PrefillUncertaintyJ, 3), pm(e.Phases.DecodeJ, e.Phases.DecodeUncertaintyJ, 3))
			if e.Phases.Batches > 0 {
				ph += fmt.Sprintf(" over %d batch(es)", e.Phases.Batches)
			}
			if e.Phases.Interpolated > 0 {
				ph += fmt.Sprintf("; %d first token(s) fell between counter updates: split by the fitted phase powers, uncertainty widened", e.Phases.Interpolated)
			}
		}
		row(tw, "phases", ph)
	}
	if c := e.CO2e; c != nil {
		row(tw, "CO₂e", fmt.Sprintf("%s g total, %s g/request, %s g/output token (at %g g CO₂e/kWh, source: %s)",
			num(c.G, 4), num(c.GPerRequest, 4), num(c.GPerOutputToken, 4), c.IntensityGPerKWh, c.Source))
	}
	flops := na
	if f.Total != nil {
		flops = fmt.Sprintf("%.4g (%s per output token, %s)", *f.Total, gnum(f.PerOutputToken), orNA(f.Method))
	}
	row(tw, "FLOPs", flops)
}

// overhead is what measuring cost, as the report's header shows it.
func overhead(tw io.Writer, o results.Overhead) {
	share := na
	if o.Share != nil {
		share = fmt.Sprintf("%.2f %%", *o.Share*100)
	}
	row(tw, "overhead", fmt.Sprintf("meter CPU %s (%s of the window)", unit(o.MeterCPUS, 3, "s"), share))
}

func validity(tw io.Writer, verdict string, partial []string) {
	row(tw, "validity", verdict)
	for _, p := range partial {
		row(tw, "partial", p)
	}
}

func domains(w io.Writer, ds []results.Domain, aggregated bool) error {
	if len(ds) == 0 {
		_, err := fmt.Fprintln(w, "\nno energy domains")
		return err
	}
	fmt.Fprintln(w)
	tw := render.NewTabWriter(w)
	if aggregated {
		fmt.Fprintln(tw, "DOMAIN\tKIND\tSCOPE\tHOST\tRANKS\tMETHOD\tENERGY\tSTATIC\tDYNAMIC")
	} else {
		fmt.Fprintln(tw, "DOMAIN\tKIND\tSCOPE\tMETHOD\tENERGY\tSTATIC\tDYNAMIC")
	}
	var notes []string
	for _, d := range ds {
		method := d.Method
		energy := na
		switch {
		case !d.Available:
			method = "unavailable (below)"
			notes = append(notes, d.ID+": unavailable: "+orNA(d.Reason))
		case d.TotalJ != nil:
			energy = pm(d.TotalJ, d.UncertaintyJ, 3) + " J"
			if d.Stitched {
				energy += " (stitched)"
			}
			switch {
			case d.NotCounted != "":
				energy += " (not in total, below)"
				notes = append(notes, d.ID+": not in total: "+d.NotCounted)
			case !d.Counted && (d.Kind == "psys" || d.Kind == "core" || d.Kind == "uncore"):
				energy += " (nested, not in total)" // a result from before counted/not_counted
			}
			if d.Confidence != "" && d.Confidence != "measured" {
				method += " (" + d.Confidence + ")"
			}
		}
		static, dynamic := na, na
		if d.StaticJ != nil {
			static = pm(d.StaticJ, d.StaticUncertaintyJ, 3) + " J"
		}
		if d.DynamicJ != nil {
			dynamic = pm(d.DynamicJ, d.DynamicUncertaintyJ, 3) + " J"
		}
		if aggregated {
			host := na
			if d.Host != nil {
				host = d.Host.Hostname
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Kind, d.Scope, host, ints(d.Ranks), method, energy, static, dynamic)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Kind, d.Scope, method, energy, static, dynamic)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, u := range notes {
		if _, err := fmt.Fprintln(w, "  "+u); err != nil {
			return err
		}
	}
	return nil
}

func repeats(w io.Writer, reps []results.Repeat, stats map[string]*results.Stats) error {
	fmt.Fprintln(w)
	tw := render.NewTabWriter(w)
	fmt.Fprintln(tw, "REPEAT\tOUTPUT TOKENS\tDURATION\tOUTPUT TOK/S\tENERGY\tJ/OUTPUT TOKEN\tTTFT P50\tITL P50")
	for _, r := range reps {
		energy := na
		if r.EnergyJ != nil {
			energy = pm(r.EnergyJ, r.EnergyUncertaintyJ, 3) + " J"
		}
		fmt.Fprintf(tw, "%d\t%d\t%.3f s\t%s\t%s\t%s\t%s\t%s\n", r.Index, r.OutputTokens, r.Window.DurationS,
			num(r.OutputTokensPerS, 2), energy, num(r.JPerOutputToken, 4), msNum(r.TTFTP50MS), msNum(r.ITLP50MS))
	}
	names := make([]string, 0, len(stats))
	for k := range stats {
		names = append(names, k)
	}
	sort.Strings(names)
	if len(names) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "FIGURE\tMEAN\tSTD\t95 % CI\tCV\tWITHIN-WINDOW U\t95 % WITH U")
	}
	for _, k := range names {
		s := stats[k]
		ci := na
		if s.CI95Low != nil {
			ci = fmt.Sprintf("[%s, %s]", gnum(s.CI95Low), gnum(s.CI95High))
		}
		cv := na
		if s.CV != nil {
			cv = fmt.Sprintf("%.2f %%", *s.CV*100)
		}
		within, comb := na, na
		if s.WithinU != nil && s.Combined95Low != nil {
			within = gnum(s.WithinU)
			comb = fmt.Sprintf("[%s, %s]", gnum(s.Combined95Low), gnum(s.Combined95High))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k, gnum(s.Mean), gnum(s.Std), ci, cv, within, comb)
	}
	return tw.Flush()
}

// deviceName describes a worker's device: kind (or vendor) and index, model, id, and for an
// accelerator the visibility environment the worker itself saw.
func deviceName(d results.Device) string {
	s := d.Kind
	if d.Vendor != "" {
		s = d.Vendor
	}
	if d.Index >= 0 {
		s += ":" + strconv.Itoa(d.Index)
	}
	if d.Name != "" {
		s += " " + d.Name
	}
	if d.UUID != "" {
		s += " " + d.UUID
	}
	if len(d.SeenEnv) > 0 {
		var env []string
		for _, k := range slices.Sorted(maps.Keys(d.SeenEnv)) {
			env = append(env, k+"="+d.SeenEnv[k])
		}
		s += ", seeing " + strings.Join(env, " ")
	}
	return s
}

// num formats a nullable figure with a fixed number of decimals.
func num(v *float64, decimals int) string {
	if v == nil {
		return na
	}
	return strconv.FormatFloat(*v, 'f', decimals, 64)
}

// unit formats a nullable figure with its unit; "—" alone when it was not measured.
func unit(v *float64, decimals int, u string) string {
	if v == nil {
		return na
	}
	return strconv.FormatFloat(*v, 'f', decimals, 64) + " " + u
}

func msNum(v *float64) string { return unit(v, 2, "ms") }

// pm formats a nullable figure with its standard uncertainty, "v ± u" (just v without one).
func pm(v, u *float64, decimals int) string {
	if v == nil || u == nil {
		return num(v, decimals)
	}
	d := decimals
	// Show the uncertainty to two significant digits, and the value to the same place.
	if *u > 0 {
		d = max(decimals, min(12, 1-int(math.Floor(math.Log10(*u)))))
	}
	return strconv.FormatFloat(*v, 'f', d, 64) + " ± " + strconv.FormatFloat(*u, 'f', d, 64)
}

func pct(v *float64) string {
	if v == nil {
		return na
	}
	return fmt.Sprintf("%.2g %%", *v*100)
}

// gnum formats a nullable figure with 4 significant digits.
func gnum(v *float64) string {
	if v == nil {
		return na
	}
	return strconv.FormatFloat(*v, 'g', 4, 64)
}

func orNA(s string) string {
	if s == "" {
		return na
	}
	return s
}

func ints(v []int) string {
	if len(v) == 0 {
		return na
	}
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

// wall formats a wall-clock time in UTC with milliseconds.
func wall(ns int64) string {
	if ns == 0 {
		return na
	}
	return time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000Z")
}
