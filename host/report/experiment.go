package report

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/lemctl/lemctl/host/results"
)

// Experiment is what an experiment page is made from: the aggregate (with its stored bytes, from
// which figures that newer lemctl versions add, such as domains' uncertainty_j, are read) and the
// raw results it was made from (for the timeline, the latency CDFs and the per-rank table; the
// page says what is missing when there are none).
type Experiment struct {
	Aggregated *results.Aggregated
	// AggregatedJSON is the aggregate as stored (optional).
	AggregatedJSON []byte
	Raws           []*results.Raw
}

// Options are what every page needs besides its results.
type Options struct {
	// LemctlVersion is the version of the lemctl that writes the report.
	LemctlVersion string
	// GeneratedUnixNS is when the report was written (0: not shown).
	GeneratedUnixNS int64
}

// KV is a label and its value.
type KV struct{ K, V string }

// DomainRow is one energy domain in the energy table.
type DomainRow struct {
	ID, Kind, Scope, Host, Method, Total, Static, Dynamic, Uncertainty, Prefill, Decode, Note string
}

// RankRow is one worker in the per-rank table.
type RankRow struct {
	Rank, Host, Device, Duration, OutputTokens, TokPerS, Energy, JPerToken, TTFT, ITL, Valid string
}

// HostEnv is one host's environment.
type HostEnv struct {
	Host    string
	Ranks   string
	Facts   []KV
	Devices []DeviceEnv
}

// DeviceEnv is one device's facts.
type DeviceEnv struct {
	ID    string
	Facts []KV
}

// PluginRow is a plugin the workers used.
type PluginRow struct{ Name, Version, Kinds, SHA256, Ranks string }

// ExperimentPage is the view an experiment page's template reads.
type ExperimentPage struct {
	Page
	ID            string
	Header        []KV
	Valid         bool
	Verdict       string
	Findings      []FindingRow
	Partial       []string
	Figures       []KV
	Timeline      []Chart
	TimelineNote  string
	EnergyChart   *Chart
	Domains       []DomainRow
	EnergyNote    string
	Latency       *Chart
	LatencyRows   []KV
	Ranks         []RankRow
	RanksNote     string
	Repeats       []KV
	Environment   []HostEnv
	Overhead      []KV
	Provenance    []KV
	Plugins       []PluginRow
	RawSHA256     []KV
	DownsampleMsg string
}

// uncertainty reads the energy uncertainties (uncertainty_j) a result may hold, by domain
// (host key + "/" + id; "" host for a raw result) and in total.
type uncertainty struct {
	Energy struct {
		UncertaintyJ *float64 `json:"uncertainty_j"`
		Domains      []struct {
			ID           string        `json:"id"`
			Host         *results.Host `json:"host"`
			UncertaintyJ *float64      `json:"uncertainty_j"`
		} `json:"domains"`
	} `json:"energy"`
}

func (u *uncertainty) domain(d results.Domain) *float64 {
	for _, x := range u.Energy.Domains {
		if x.ID == d.ID && (x.Host == nil) == (d.Host == nil) && (x.Host == nil || *x.Host == *d.Host) {
			return x.UncertaintyJ
		}
	}
	return nil
}

// maxDomainBars is the most domains the energy chart draws one bar each; beyond it, one bar per
// domain kind (their sum).
const maxDomainBars = 24

// NewExperimentPage builds the view of an experiment page.
func NewExperimentPage(e Experiment, o Options) (*ExperimentPage, error) {
	a := e.Aggregated
	if a == nil {
		return nil, fmt.Errorf("report: no aggregate")
	}
	var unc uncertainty
	if len(e.AggregatedJSON) > 0 {
		if err := json.Unmarshal(e.AggregatedJSON, &unc); err != nil {
			return nil, fmt.Errorf("report: read the aggregate's uncertainties: %w", err)
		}
	}
	p := &ExperimentPage{Page: newBase("Experiment "+a.ExperimentID, o), ID: a.ExperimentID, Valid: a.Validity.Valid}
	p.Findings = findingRows(a.Validity.Findings, a.Energy.Domains, a.Warnings)
	p.Verdict = results.Verdict(a.Validity.Valid, results.WithHealth(a.Validity.Findings, a.Energy.Domains), a.Warnings)
	if a.Partial {
		p.Partial = append([]string{"PARTIAL: not every rank is in this aggregate"}, a.PartialReasons...)
	}
	p.header(a)
	p.figures(a)
	if err := p.timeline(e.Raws); err != nil {
		return nil, err
	}
	if err := p.energy(a, &unc); err != nil {
		return nil, err
	}
	if err := p.latency(a, e.Raws); err != nil {
		return nil, err
	}
	p.ranks(a, e.Raws)
	p.environment(a)
	p.provenance(a, e.Raws)
	return p, nil
}

// WriteExperiment writes the HTML page of an experiment.
func WriteExperiment(w io.Writer, e Experiment, o Options) error {
	p, err := NewExperimentPage(e, o)
	if err != nil {
		return err
	}
	return execute(w, "experiment", p)
}

func (p *ExperimentPage) header(a *results.Aggregated) {
	params := NotMeasured
	if a.Model.Parameters != nil {
		params = strconv.FormatInt(*a.Model.Parameters, 10)
	}
	model := fmt.Sprintf("%s (%s, %s parameters", a.Model.Ref, orNM(a.Model.Architecture), params)
	if a.Model.Synthetic {
		model += ", synthetic"
	}
	hosts := make([]string, 0, len(a.Hosts))
	for _, h := range a.Hosts {
		hosts = append(hosts, h.Hostname)
	}
	devs := map[string]int{}
	for _, s := range a.Devices {
		name := s.Device.Kind
		if s.Device.Name != "" {
			name += " " + s.Device.Name
		}
		devs[name]++
	}
	var dl []string
	for _, k := range sortedKeys(devs) {
		dl = append(dl, fmt.Sprintf("%d × %s", devs[k], k))
	}
	where := fmt.Sprintf("%d host(s)", len(hosts))
	if len(hosts) <= 8 {
		where += ": " + strings.Join(hosts, ", ")
	}
	lemctl := a.Aggregation.LemctlVersion
	if lemctl == "" {
		lemctl = a.Provenance.LemctlVersion
	}
	p.Header = []KV{
		{"experiment", a.ExperimentID},
		{"when", fmt.Sprintf("%s → %s (%.3f s measured window)", wall(a.Window.StartUnixNS), wall(a.Window.EndUnixNS), a.Window.DurationS)},
		{"where", where},
		{"devices", fmt.Sprintf("%s (ranks %s of %d)", strings.Join(dl, ", "), ints(a.Ranks), a.WorldSize)},
		{"model", model + ")"},
		{"engine", fmt.Sprintf("%s %s (%s)", a.Engine.Plugin, a.Engine.Version, orNM(a.Engine.ExecutionProvider))},
		{"dataset", fmt.Sprintf("%s (%d prompts)", orNM(a.Dataset.Name), a.Dataset.Prompts)},
		{"lemctl", fmt.Sprintf("%s (commit %s)", orNM(lemctl), orNM(a.Provenance.LemctlCommit))},
		{"config hash", a.ConfigHash},
	}
}

func (p *ExperimentPage) figures(a *results.Aggregated) {
	en, l, t := a.Energy, a.LatencyMS, a.Throughput
	p.Figures = []KV{
		{"energy (total)", g(en.TotalJ, "J")},
		{"static / dynamic", gu(en.StaticJ, en.StaticUncertaintyJ, "J") + " / " + gu(en.DynamicJ, en.DynamicUncertaintyJ, "J")},
		{"prefill / decode", gu(en.Phases.PrefillJ, en.Phases.PrefillUncertaintyJ, "J") + " / " + gu(en.Phases.DecodeJ, en.Phases.DecodeUncertaintyJ, "J")},
		{"J per output token", gu(en.JPerOutputToken, en.JPerOutputTokenUncertainty, "J") + " (dynamic " + gu(en.DynamicJPerOutputToken, en.DynamicJPerOutputTokenUncertainty, "J") + ")"},
		{"tokens per J", gu(en.TokensPerJ, en.TokensPerJUncertainty, "tokens/J")},
		{"tokens per second", g(t.OutputTokensPerS, "output tokens/s")},
		{"TTFT p50 / p90 / p99", g(l.TTFT.P50, "ms") + " / " + g(l.TTFT.P90, "ms") + " / " + g(l.TTFT.P99, "ms")},
		{"ITL p50 / p90 / p99", g(l.ITL.P50, "ms") + " / " + g(l.ITL.P90, "ms") + " / " + g(l.ITL.P99, "ms")},
		{"end-to-end p50 / p90 / p99", g(l.E2E.P50, "ms") + " / " + g(l.E2E.P90, "ms") + " / " + g(l.E2E.P99, "ms")},
		{"measurement overhead", fmt.Sprintf("%s of meter CPU (%s of the window)", g(a.Overhead.MeterCPUS, "s"), pct(a.Overhead.Share))},
	}
	p.Overhead = []KV{
		{"meter plugins' CPU time in the window", g(a.Overhead.MeterCPUS, "s")},
		{"share of the window's CPU time", pct(a.Overhead.Share)},
	}
	if len(a.Repeats) > 0 {
		for _, r := range a.Repeats {
			p.Repeats = append(p.Repeats, KV{fmt.Sprintf("repeat %d", r.Index), fmt.Sprintf("%d output tokens in %.3f s: %s, %s, %s, TTFT p50 %s, ITL p50 %s",
				r.OutputTokens, r.Window.DurationS, g(r.OutputTokensPerS, "tokens/s"), g(r.EnergyJ, "J"), g(r.JPerOutputToken, "J/token"), g(r.TTFTP50MS, "ms"), g(r.ITLP50MS, "ms"))})
		}
		for _, k := range sortedKeys(a.RepeatStats) {
			s := a.RepeatStats[k]
			ci := "—"
			if s.CI95Low != nil && s.CI95High != nil {
				ci = fmt.Sprintf("[%s, %s]", g(s.CI95Low, ""), g(s.CI95High, ""))
			}
			p.Repeats = append(p.Repeats, KV{k, fmt.Sprintf("mean %s over %d repeats, 95 %% interval %s", g(s.Mean, ""), s.N, ci)})
		}
	}
}

func (p *ExperimentPage) timeline(raws []*results.Raw) error {
	if len(raws) == 0 {
		p.TimelineNote = "Power timeline: not measured here (the raw results, which hold the meters' timelines, are not in the results repository)."
		return nil
	}
	tl := buildTimeline(raws)
	charts, err := tl.charts()
	if err != nil {
		return err
	}
	p.Timeline = charts
	if len(charts) == 0 {
		p.TimelineNote = "Power timeline: not measured (no meter recorded a timeline in the raw results)."
		return nil
	}
	if tl.Drawn < tl.Samples {
		p.DownsampleMsg = fmt.Sprintf("The timeline is downsampled: %d of %d points drawn, the extremes of every interval kept.", tl.Drawn, tl.Samples)
	}
	return nil
}

func (p *ExperimentPage) energy(a *results.Aggregated, unc *uncertainty) error {
	en := a.Energy
	for _, d := range en.Domains {
		host := ""
		if d.Host != nil {
			host = d.Host.Hostname
		}
		row := DomainRow{ID: d.ID, Kind: d.Kind, Scope: d.Scope, Host: host, Method: d.Method,
			Total: g(d.TotalJ, "J"), Static: gu(d.StaticJ, d.StaticUncertaintyJ, "J"), Dynamic: gu(d.DynamicJ, d.DynamicUncertaintyJ, "J"),
			Uncertainty: "not given", Prefill: gu(d.Phases.PrefillJ, d.Phases.PrefillUncertaintyJ, "J"), Decode: gu(d.Phases.DecodeJ, d.Phases.DecodeUncertaintyJ, "J")}
		u := d.UncertaintyJ
		if u == nil {
			u = unc.domain(d)
		}
		if u != nil {
			row.Uncertainty = "± " + g(u, "J")
		}
		switch {
		case !d.Available:
			row.Method, row.Note = "unavailable", orNM(d.Reason)
		case d.NotCounted != "":
			row.Note = "not in the total: " + d.NotCounted
		case d.Counted:
			row.Note = "counted"
		}
		if d.Stitched {
			row.Note = strings.TrimPrefix(row.Note+"; stitched", "; ")
		}
		p.Domains = append(p.Domains, row)
	}
	total := DomainRow{ID: "total", Kind: strings.Join(en.CountedDomainKinds, " + "), Total: g(en.TotalJ, "J"),
		Static: gu(en.StaticJ, en.StaticUncertaintyJ, "J"), Dynamic: gu(en.DynamicJ, en.DynamicUncertaintyJ, "J"), Uncertainty: "not given",
		Prefill: gu(en.Phases.PrefillJ, en.Phases.PrefillUncertaintyJ, "J"), Decode: gu(en.Phases.DecodeJ, en.Phases.DecodeUncertaintyJ, "J"), Note: "the counted domains"}
	if en.UncertaintyJ != nil {
		total.Uncertainty = "± " + g(en.UncertaintyJ, "J")
	} else if unc.Energy.UncertaintyJ != nil {
		total.Uncertainty = "± " + g(unc.Energy.UncertaintyJ, "J")
	}
	p.Domains = append(p.Domains, total)

	// The chart: static and dynamic stacked per domain (or per kind when there are many).
	type bar struct {
		label                  string
		static, dynamic, whole float64
	}
	var bars []bar
	var measured []results.Domain
	for _, d := range en.Domains {
		if d.Available && d.TotalJ != nil {
			measured = append(measured, d)
		}
	}
	if len(measured) == 0 {
		p.EnergyNote = "Energy: not measured (no domain was available)."
		return nil
	}
	perKind := len(measured) > maxDomainBars
	index := map[string]int{}
	for _, d := range measured {
		label := d.ID
		if d.Host != nil && len(a.Hosts) > 1 {
			label = d.Host.Hostname + "/" + d.ID
		}
		if perKind {
			label = d.Kind + " (sum)"
		}
		i, ok := index[label]
		if !ok {
			i = len(bars)
			index[label] = i
			bars = append(bars, bar{label: label})
		}
		if d.StaticJ != nil && d.DynamicJ != nil {
			bars[i].static += *d.StaticJ
			bars[i].dynamic += *d.DynamicJ
		} else {
			bars[i].whole += *d.TotalJ
		}
	}
	if perKind {
		p.EnergyNote = fmt.Sprintf("%d measured domains: the chart sums them by kind; the table lists each.", len(measured))
	}
	title := "Energy by domain in the measured window"
	pl := newPlot(title, "", "energy (J)")
	var st, dy, wh plotter.Values
	labels := make([]string, len(bars))
	for i, b := range bars {
		st, dy, wh = append(st, b.static), append(dy, b.dynamic), append(wh, b.whole)
		labels[i] = b.label
	}
	width := vg.Points(max(6, min(40, 400/float64(len(bars)))))
	sb, err := plotter.NewBarChart(st, width)
	if err != nil {
		return err
	}
	sb.Color, sb.LineStyle.Width = colour(4), 0
	db, err := plotter.NewBarChart(dy, width)
	if err != nil {
		return err
	}
	db.Color, db.LineStyle.Width = colour(0), 0
	db.StackOn(sb)
	wb, err := plotter.NewBarChart(wh, width)
	if err != nil {
		return err
	}
	wb.Color, wb.LineStyle.Width = colour(1), 0
	wb.StackOn(db)
	pl.Add(sb, db, wb)
	pl.Legend.Add("static (idle power × window)", sb)
	pl.Legend.Add("dynamic", db)
	pl.Legend.Add("total (no static/dynamic split)", wb)
	pl.NominalX(labels...)
	if len(labels) > 6 {
		pl.X.Tick.Label.Rotation = 0.6
		pl.X.Tick.Label.XAlign = -1
	}
	svg, err := svgOf(chartH+0.6*vg.Inch, pl)
	if err != nil {
		return err
	}
	p.EnergyChart = &Chart{ID: "energy-by-domain", Title: title, SVG: svg, Series: 3, Points: len(bars)}
	return nil
}

// maxCDFPoints bounds the points of each latency CDF.
const maxCDFPoints = 400

func (p *ExperimentPage) latency(a *results.Aggregated, raws []*results.Raw) error {
	var ttft, itl, e2e []float64
	for _, r := range raws {
		for _, q := range r.Requests {
			if len(q.TokenMonoNS) == 0 {
				continue
			}
			ttft = append(ttft, float64(q.TokenMonoNS[0]-q.StartMonoNS)/1e6)
			e2e = append(e2e, float64(q.TokenMonoNS[len(q.TokenMonoNS)-1]-q.StartMonoNS)/1e6)
			for i := 1; i < len(q.TokenMonoNS); i++ {
				itl = append(itl, float64(q.TokenMonoNS[i]-q.TokenMonoNS[i-1])/1e6)
			}
		}
	}
	title := "Latency: cumulative distribution"
	pl := newPlot(title, "latency (ms)", "fraction of requests (ITL: of intervals)")
	pl.Legend.Top, pl.Legend.Left = false, false
	source := "the requests of the raw results"
	series := []struct {
		name string
		v    []float64
		s    results.Summary
	}{{"TTFT", ttft, a.LatencyMS.TTFT}, {"ITL", itl, a.LatencyMS.ITL}, {"end-to-end", e2e, a.LatencyMS.E2E}}
	ch := &Chart{ID: "latency-cdf", Title: title}
	for i, s := range series {
		var xys plotter.XYs
		if len(s.v) > 0 {
			sort.Float64s(s.v)
			n := min(len(s.v), maxCDFPoints)
			for k := 0; k <= n; k++ {
				q := float64(k) / float64(n)
				xys = append(xys, plotter.XY{X: quantileAt(s.v, q), Y: q})
			}
		} else {
			// No raw results: the aggregate's percentiles, as points of the CDF.
			source = "the aggregate's percentiles (the raw results are not in the repository)"
			for _, pt := range []struct {
				q float64
				v *float64
			}{{0, s.s.Min}, {0.5, s.s.P50}, {0.9, s.s.P90}, {0.95, s.s.P95}, {0.99, s.s.P99}, {1, s.s.Max}} {
				if pt.v != nil {
					xys = append(xys, plotter.XY{X: *pt.v, Y: pt.q})
				}
			}
		}
		p.LatencyRows = append(p.LatencyRows, KV{s.name, fmt.Sprintf("%d samples; p50 %s, p90 %s, p95 %s, p99 %s, max %s",
			s.s.Count, g(s.s.P50, "ms"), g(s.s.P90, "ms"), g(s.s.P95, "ms"), g(s.s.P99, "ms"), g(s.s.Max, "ms"))})
		if len(xys) < 2 {
			continue
		}
		if err := line(pl, s.name, i, xys, false); err != nil {
			return err
		}
		ch.Series++
		ch.Points += len(xys)
	}
	if ch.Series == 0 {
		return nil
	}
	svg, err := svgOf(chartH, pl)
	if err != nil {
		return err
	}
	ch.SVG, ch.Note = svg, "From "+source+"."
	p.Latency = ch
	return nil
}

func (p *ExperimentPage) ranks(a *results.Aggregated, raws []*results.Raw) {
	if len(raws) == 0 {
		for _, w := range a.Throughput.PerWorker {
			p.Ranks = append(p.Ranks, RankRow{Rank: strconv.Itoa(w.Rank), Host: "—", Device: "—", Duration: gf(w.DurationS, "s"),
				OutputTokens: "—", TokPerS: g(w.OutputTokensPerS, ""), Energy: NotMeasured, JPerToken: NotMeasured, TTFT: NotMeasured, ITL: NotMeasured, Valid: "—"})
		}
		p.RanksNote = "From the aggregate's per-worker throughput; the raw results are not in the repository."
		return
	}
	sorted := append([]*results.Raw(nil), raws...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Rank < sorted[j].Rank })
	for _, r := range sorted {
		valid := "valid"
		if !r.Validity.Valid {
			valid = "INVALID"
		}
		p.Ranks = append(p.Ranks, RankRow{Rank: strconv.Itoa(r.Rank), Host: r.Host.Hostname, Device: r.Device.Slot + " " + r.Device.Name,
			Duration: gf(r.Window.DurationS, "s"), OutputTokens: strconv.FormatInt(r.Workload.OutputTokens, 10),
			TokPerS: g(r.Throughput.OutputTokensPerS, ""), Energy: g(r.Energy.TotalJ, "J"), JPerToken: g(r.Energy.JPerOutputToken, "J"),
			TTFT: g(r.LatencyMS.TTFT.P50, "ms"), ITL: g(r.LatencyMS.ITL.P50, "ms"), Valid: valid})
	}
}

func (p *ExperimentPage) environment(a *results.Aggregated) {
	for _, h := range a.Environment.Hosts {
		he := HostEnv{Host: h.Host.Hostname + " (boot " + h.Host.BootID + ")", Ranks: ints(h.Ranks)}
		for _, k := range sortedKeys(h.Facts) {
			he.Facts = append(he.Facts, KV{k, h.Facts[k]})
		}
		for _, d := range h.Devices {
			de := DeviceEnv{ID: d.ID}
			for _, k := range sortedKeys(d.Facts) {
				de.Facts = append(de.Facts, KV{k, d.Facts[k]})
			}
			he.Devices = append(he.Devices, de)
		}
		p.Environment = append(p.Environment, he)
	}
}

func (p *ExperimentPage) provenance(a *results.Aggregated, raws []*results.Raw) {
	pv := a.Provenance
	p.Provenance = []KV{
		{"lemctl that measured", fmt.Sprintf("%s (commit %s)", orNM(pv.LemctlVersion), orNM(pv.LemctlCommit))},
		{"lemctl that aggregated", fmt.Sprintf("%s (commit %s), strict %v, allow mixed %v", orNM(a.Aggregation.LemctlVersion), orNM(a.Aggregation.LemctlCommit), a.Aggregation.Strict, a.Aggregation.AllowMixed)},
		{"config hash", a.ConfigHash},
		{"model", a.Model.Ref + " sha256 " + orNM(a.Model.SHA256)},
		{"dataset", orNM(a.Dataset.Name) + " sha256 " + orNM(a.Dataset.SHA256)},
		{"execution provider", orNM(pv.ExecutionProvider)},
	}
	for _, k := range sortedKeys(pv.RuntimeVersions) {
		p.Provenance = append(p.Provenance, KV{"runtime " + k, pv.RuntimeVersions[k]})
	}
	for _, ov := range pv.Overrides {
		p.Provenance = append(p.Provenance, KV{"override " + ov.Key, ov.Value + " (from " + ov.Source + ")"})
	}
	type key struct{ name, version, sha string }
	ranks := map[key][]int{}
	kinds := map[key]string{}
	var order []key
	for _, r := range raws {
		for _, pl := range r.Plugins {
			k := key{pl.Name, pl.Version, pl.SHA256}
			if _, ok := ranks[k]; !ok {
				order = append(order, k)
				kinds[k] = strings.Join(pl.Kinds, ", ")
			}
			ranks[k] = append(ranks[k], r.Rank)
		}
	}
	sort.Slice(order, func(i, j int) bool {
		return order[i].name < order[j].name || order[i].name == order[j].name && order[i].version < order[j].version
	})
	for _, k := range order {
		rs := ranks[k]
		sort.Ints(rs)
		p.Plugins = append(p.Plugins, PluginRow{Name: k.name, Version: k.version, Kinds: kinds[k], SHA256: orNM(k.sha), Ranks: ints(rs)})
	}
	rk := make([]int, 0, len(a.Aggregation.RawSHA256))
	for s := range a.Aggregation.RawSHA256 {
		if n, err := strconv.Atoi(s); err == nil {
			rk = append(rk, n)
		}
	}
	sort.Ints(rk)
	for _, n := range rk {
		p.RawSHA256 = append(p.RawSHA256, KV{strconv.Itoa(n), a.Aggregation.RawSHA256[strconv.Itoa(n)]})
	}
}
