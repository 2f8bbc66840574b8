package report

import (
	"fmt"
	"image/color"
	"math"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/lemctl/lemctl/host/results"
)

// MaxTimelinePoints bounds the points drawn per timeline series: a longer series is cut into
// MaxTimelinePoints/2 equal time buckets and each bucket keeps its lowest and its highest point,
// so peaks and dips survive downsampling.
const MaxTimelinePoints = 600

// maxLines is the most series of one domain kind drawn as separate lines; beyond it the kind is
// drawn as its min–max envelope over the domains with the mean as a line.
const maxLines = 8

// tseries is one domain's power (and temperature and SM clock) over time, in seconds since the
// origin.
type tseries struct {
	name, kind string
	t, w       []float64
	tt, temp   []float64
	ct, clock  []float64
}

// timeline is what the timeline charts draw.
type timeline struct {
	series  []*tseries
	origin  int64 // unix ns of time 0
	phases  []phaseBand
	repeats []float64
	// prefill and decode are merged intervals of the lowest rank's requests; bandsRank says whose.
	prefill, decode [][2]float64
	bandsRank       int
	bandsNote       string
	// Samples is the number of power points before downsampling, Drawn after.
	Samples, Drawn int
}

type phaseBand struct {
	name   string
	t0, t1 float64
}

// monoToUnix converts a worker's CLOCK_MONOTONIC time to wall time through its window's two clocks.
func monoToUnix(r *results.Raw, mono int64) int64 {
	return r.Window.StartUnixNS + (mono - r.Window.StartMonoNS)
}

// buildTimeline collects the domains' timelines of the raw results (a domain several workers
// share — a host's package — once, from the lowest rank that has it).
func buildTimeline(raws []*results.Raw) *timeline {
	tl := &timeline{origin: math.MaxInt64}
	sorted := append([]*results.Raw(nil), raws...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Rank < sorted[j].Rank })
	for _, r := range sorted {
		for _, d := range r.Energy.Domains {
			if len(d.Timeline) > 0 {
				if u := monoToUnix(r, d.Timeline[0].MonoNS); u < tl.origin {
					tl.origin = u
				}
			}
		}
		for _, sp := range r.Window.Phases {
			if sp.StartUnixNS > 0 && sp.StartUnixNS < tl.origin {
				tl.origin = sp.StartUnixNS
			}
		}
	}
	if tl.origin == math.MaxInt64 {
		return tl
	}
	sec := func(unix int64) float64 { return float64(unix-tl.origin) / 1e9 }
	seen := map[string]bool{}
	multiHost := false
	if len(sorted) > 0 {
		for _, r := range sorted[1:] {
			multiHost = multiHost || r.Host.Key() != sorted[0].Host.Key()
		}
	}
	for _, r := range sorted {
		for _, d := range r.Energy.Domains {
			key := r.Host.Key() + "/" + d.ID
			if len(d.Timeline) < 2 || seen[key] {
				continue
			}
			seen[key] = true
			name := d.ID
			if d.Name != "" && d.Name != d.ID {
				name += " (" + d.Name + ")"
			}
			if multiHost {
				name = r.Host.Hostname + "/" + name
			}
			s := &tseries{name: name, kind: d.Kind}
			for i, smp := range d.Timeline {
				t := sec(monoToUnix(r, smp.MonoNS))
				if smp.TemperatureC != nil {
					s.tt, s.temp = append(s.tt, t), append(s.temp, *smp.TemperatureC)
				}
				if smp.SMClockMHz != nil {
					s.ct, s.clock = append(s.ct, t), append(s.clock, *smp.SMClockMHz)
				}
				if i == 0 {
					continue
				}
				prev := d.Timeline[i-1]
				var w float64
				switch dt := float64(smp.MonoNS-prev.MonoNS) / 1e9; {
				case smp.PowerW != nil:
					w = *smp.PowerW
				case dt > 0 && smp.EnergyUJ >= prev.EnergyUJ:
					w = float64(smp.EnergyUJ-prev.EnergyUJ) / 1e6 / dt
				default:
					continue
				}
				s.t, s.w = append(s.t, t), append(s.w, w)
			}
			if len(s.t) > 0 {
				tl.series = append(tl.series, s)
			}
		}
	}
	if len(sorted) == 0 {
		return tl
	}
	first := sorted[0]
	for name, sp := range first.Window.Phases {
		if sp.EndUnixNS > sp.StartUnixNS {
			tl.phases = append(tl.phases, phaseBand{name: name, t0: sec(sp.StartUnixNS), t1: sec(sp.EndUnixNS)})
		}
	}
	sort.Slice(tl.phases, func(i, j int) bool { return tl.phases[i].t0 < tl.phases[j].t0 })
	for _, rp := range first.Repeats {
		if rp.Window.StartUnixNS > 0 {
			tl.repeats = append(tl.repeats, sec(rp.Window.StartUnixNS))
		}
	}
	tl.bandsRank = first.Rank
	var pre, dec [][2]float64
	for _, q := range first.Requests {
		if len(q.TokenMonoNS) == 0 {
			continue
		}
		s, f, l := sec(monoToUnix(first, q.StartMonoNS)), sec(monoToUnix(first, q.TokenMonoNS[0])), sec(monoToUnix(first, q.TokenMonoNS[len(q.TokenMonoNS)-1]))
		pre = append(pre, [2]float64{s, f})
		if l > f {
			dec = append(dec, [2]float64{f, l})
		}
	}
	tl.prefill, tl.decode = mergeIntervals(pre), mergeIntervals(dec)
	if len(tl.prefill) == 0 && len(tl.decode) == 0 {
		tl.bandsNote = "prefill and decode bands: not measured (no request of the lowest rank has token times)"
	}
	return tl
}

// mergeIntervals returns the union of intervals, sorted.
func mergeIntervals(in [][2]float64) [][2]float64 {
	if len(in) == 0 {
		return nil
	}
	sort.Slice(in, func(i, j int) bool { return in[i][0] < in[j][0] })
	out := [][2]float64{in[0]}
	for _, iv := range in[1:] {
		last := &out[len(out)-1]
		if iv[0] <= last[1] {
			last[1] = math.Max(last[1], iv[1])
		} else {
			out = append(out, iv)
		}
	}
	return out
}

// downsample keeps at most max points of (t, y), t ascending: max/2 equal time buckets, each
// keeping its lowest and highest point in time order.
func downsample(t, y []float64, max int) ([]float64, []float64) {
	if len(t) <= max {
		return t, y
	}
	nb := max / 2
	t0, t1 := t[0], t[len(t)-1]
	width := (t1 - t0) / float64(nb)
	var ot, oy []float64
	for i := 0; i < len(t); {
		b := int((t[i] - t0) / width)
		if b >= nb {
			b = nb - 1
		}
		lo, hi := i, i
		j := i
		for ; j < len(t); j++ {
			bj := int((t[j] - t0) / width)
			if bj >= nb {
				bj = nb - 1
			}
			if bj != b {
				break
			}
			if y[j] < y[lo] {
				lo = j
			}
			if y[j] > y[hi] {
				hi = j
			}
		}
		a, c := lo, hi
		if a > c {
			a, c = c, a
		}
		ot, oy = append(ot, t[a]), append(oy, y[a])
		if c != a {
			ot, oy = append(ot, t[c]), append(oy, y[c])
		}
		i = j
	}
	return ot, oy
}

// envelope merges many series into max/2 time buckets: per bucket the lowest, mean and highest
// value of all their points.
func envelope(ss []*tseries, get func(*tseries) ([]float64, []float64), max int) (xs, lo, mean, hi []float64) {
	t0, t1 := math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		t, _ := get(s)
		if len(t) > 0 {
			t0, t1 = math.Min(t0, t[0]), math.Max(t1, t[len(t)-1])
		}
	}
	nb := max / 2
	if !(t1 > t0) {
		return nil, nil, nil, nil
	}
	width := (t1 - t0) / float64(nb)
	type acc struct {
		lo, hi, sum float64
		n           int
	}
	buckets := make([]acc, nb)
	for i := range buckets {
		buckets[i] = acc{lo: math.Inf(1), hi: math.Inf(-1)}
	}
	for _, s := range ss {
		t, y := get(s)
		for i := range t {
			b := min(int((t[i]-t0)/width), nb-1)
			a := &buckets[b]
			a.lo, a.hi, a.sum, a.n = math.Min(a.lo, y[i]), math.Max(a.hi, y[i]), a.sum+y[i], a.n+1
		}
	}
	for i, a := range buckets {
		if a.n == 0 {
			continue
		}
		xs = append(xs, t0+(float64(i)+0.5)*width)
		lo, mean, hi = append(lo, a.lo), append(mean, a.sum/float64(a.n)), append(hi, a.hi)
	}
	return xs, lo, mean, hi
}

// kinds returns the domain kinds of the series in order of first appearance.
func (tl *timeline) kinds() []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range tl.series {
		if !seen[s.kind] {
			seen[s.kind] = true
			out = append(out, s.kind)
		}
	}
	return out
}

// charts draws one chart per domain kind: power over time with the phases, the repeats' starts
// and the prefill/decode bands, and beneath it the domains' temperature where a meter gave it.
func (tl *timeline) charts() ([]Chart, error) {
	var out []Chart
	for ki, kind := range tl.kinds() {
		var ss []*tseries
		for _, s := range tl.series {
			if s.kind == kind {
				ss = append(ss, s)
			}
		}
		ch, err := tl.kindChart(ki, kind, ss)
		if err != nil {
			return nil, err
		}
		out = append(out, ch)
	}
	return out, nil
}

func (tl *timeline) kindChart(ki int, kind string, ss []*tseries) (Chart, error) {
	title := fmt.Sprintf("Power of the %s domains", orDash(kind))
	p := newPlot(title, "time since the first sample (s)", "power (W)")
	ymax := 0.0
	ch := Chart{ID: "timeline-" + slug(kind), Title: title}
	raw := 0
	type drawn struct {
		name string
		t, y []float64
	}
	var lines []drawn
	var bandX, bandLo, bandHi []float64
	if len(ss) <= maxLines {
		for _, s := range ss {
			raw += len(s.t)
			t, y := downsample(s.t, s.w, MaxTimelinePoints)
			lines = append(lines, drawn{s.name, t, y})
		}
	} else {
		for _, s := range ss {
			raw += len(s.t)
		}
		xs, lo, mean, hi := envelope(ss, func(s *tseries) ([]float64, []float64) { return s.t, s.w }, MaxTimelinePoints)
		lines = append(lines, drawn{fmt.Sprintf("mean of %d domains", len(ss)), xs, mean})
		bandX, bandLo, bandHi = xs, lo, hi
	}
	for _, l := range lines {
		for _, v := range l.y {
			ymax = math.Max(ymax, v)
		}
	}
	for _, v := range bandHi {
		ymax = math.Max(ymax, v)
	}
	if ymax <= 0 {
		ymax = 1
	}
	// Phases first, beneath the data.
	for i, ph := range tl.phases {
		c := faded(colour(i+2), 0x22)
		poly, err := rect(p, c, ph.t0, ph.t1, 0, ymax*1.02)
		if err != nil {
			return ch, err
		}
		p.Legend.Add("phase: "+ph.name, poly)
	}
	top := ymax * 1.04
	for _, b := range []struct {
		name string
		ivs  [][2]float64
		c    int
	}{{"prefill", tl.prefill, 3}, {"decode", tl.decode, 0}} {
		if len(b.ivs) == 0 {
			continue
		}
		var first *plotter.Polygon
		for _, iv := range b.ivs {
			poly, err := rect(p, faded(colour(b.c), 0xb0), iv[0], math.Max(iv[1], iv[0]+1e-4), top, top+ymax*0.04)
			if err != nil {
				return ch, err
			}
			if first == nil {
				first = poly
			}
		}
		p.Legend.Add(fmt.Sprintf("%s (rank %d's requests)", b.name, tl.bandsRank), first)
	}
	for i, r := range tl.repeats {
		l, err := plotter.NewLine(plotter.XYs{{X: r, Y: 0}, {X: r, Y: ymax * 1.02}})
		if err != nil {
			return ch, err
		}
		l.LineStyle.Color = color.Gray{0x55}
		l.LineStyle.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
		p.Add(l)
		if i == 0 {
			p.Legend.Add("start of each repeat", l)
		}
	}
	if bandX != nil {
		if err := band(p, 0, bandX, bandLo, bandHi); err != nil {
			return ch, err
		}
		ch.Points += 2 * len(bandX)
	}
	for i, l := range lines {
		xys := make(plotter.XYs, len(l.t))
		for k := range l.t {
			xys[k] = plotter.XY{X: l.t[k], Y: l.y[k]}
		}
		if err := line(p, l.name, i, xys, false); err != nil {
			return ch, err
		}
		ch.Points += len(xys)
		ch.Series++
	}
	if bandX != nil {
		p.Legend.Add(fmt.Sprintf("lowest–highest of the %d domains", len(ss)), mustPoly(bandX, 0))
	}
	p.Y.Min = 0
	p.Y.Max = top + ymax*0.06
	tl.Samples += raw
	tl.Drawn += ch.Points
	var notes []string
	if ch.Points < raw {
		notes = append(notes, fmt.Sprintf("Downsampled: %d of %d power samples drawn (each of %d time intervals keeps its lowest and highest sample).", ch.Points, raw, MaxTimelinePoints/2))
	}
	if bandX != nil {
		notes = append(notes, fmt.Sprintf("%d domains of kind %s: drawn as their mean with the band from the lowest to the highest.", len(ss), kind))
	}
	if tl.bandsNote != "" {
		notes = append(notes, tl.bandsNote)
	}
	// Temperature and the SM clock beneath, each on its own axis, when a meter gave them.
	plots := []*plot.Plot{p}
	height := chartH + 0.8*vg.Inch
	for _, aux := range []struct {
		label, absent string
		of            func(*tseries) (t, y []float64)
	}{
		{"temperature (°C)", "Temperature: not measured (no meter reported it for these domains).",
			func(s *tseries) ([]float64, []float64) { return s.tt, s.temp }},
		{"SM clock (MHz)", "Clock frequency: not measured (no meter reported clocks for these domains).",
			func(s *tseries) ([]float64, []float64) { return s.ct, s.clock }},
	} {
		ap := newPlot("", "time since the first sample (s)", aux.label)
		n := 0
		for i, s := range ss {
			st, sy := aux.of(s)
			if len(st) == 0 || i >= maxLines {
				continue
			}
			t, y := downsample(st, sy, MaxTimelinePoints)
			xys := make(plotter.XYs, len(t))
			for k := range t {
				xys[k] = plotter.XY{X: t[k], Y: y[k]}
			}
			if err := line(ap, s.name, i, xys, true); err != nil {
				return ch, err
			}
			n += len(xys)
		}
		if n == 0 {
			notes = append(notes, aux.absent)
			continue
		}
		for _, q := range plots {
			q.X.Label.Text = ""
		}
		ap.X.Label.Text = "time since the first sample (s)"
		plots = append(plots, ap)
		height += 2 * vg.Inch
		ch.Points += n
	}
	svg, err := svgOf(height, plots...)
	if err != nil {
		return ch, err
	}
	ch.SVG, ch.Note = svg, strings.Join(notes, " ")
	return ch, nil
}

// mustPoly is a legend thumbnail for a band in palette colour i.
func mustPoly(xs []float64, i int) *plotter.Polygon {
	poly, _ := plotter.NewPolygon(plotter.XYs{{X: xs[0], Y: 0}, {X: xs[0], Y: 0}, {X: xs[0], Y: 0}})
	poly.Color = faded(colour(i), 0x40)
	poly.LineStyle.Width = 0
	return poly
}

func slug(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	if b.Len() == 0 {
		return "x"
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
