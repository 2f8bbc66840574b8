package report

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/study"
)

// figureInfo is how a page names a study figure and whether lower is better.
type figureInfo struct {
	Label, Unit   string
	LowerIsBetter bool
}

var figureInfos = map[string]figureInfo{
	study.FigureJPerOutputToken:        {"energy per output token", "J", true},
	study.FigureDynamicJPerOutputToken: {"dynamic energy per output token", "J", true},
	study.FigureOutputTokensPerS:       {"throughput", "output tokens/s", false},
	study.FigureTTFTP50MS:              {"TTFT p50", "ms", true},
	study.FigureTTFTP99MS:              {"TTFT p99", "ms", true},
	study.FigureITLP50MS:               {"ITL p50", "ms", true},
	study.FigureITLP99MS:               {"ITL p99", "ms", true},
	study.FigurePowerW:                 {"mean power", "W", true},
	"energy_j":                         {"energy", "J", true},
	"output_tokens":                    {"output tokens", "tokens", false},
}

func infoOf(name string) figureInfo {
	if fi, ok := figureInfos[name]; ok {
		return fi
	}
	return figureInfo{Label: name, LowerIsBetter: true}
}

// Frontier is the Pareto frontier of a study (energy per output token against throughput) and
// the point to recommend, as `lemctl frontier` decides them (host/cli/frontiercmd); this package
// computes neither. A nil Frontier in StudyOptions draws the points and marks no frontier.
type Frontier struct {
	// Points are the ids of the points on the frontier.
	Points []string
	// Recommended is the id of the recommended point ("" for none) and Why the rule that chose it.
	Recommended, Why string
}

// StudyOptions are a study page's inputs besides the study.
type StudyOptions struct {
	Options
	Frontier *Frontier
}

// PointRow is one point in the study's table.
type PointRow struct {
	ID, Settings, Cycles, Valid string
	Figures                     []string
	Frontier, Recommended       bool
	Findings                    []FindingRow
}

// StudyPage is the view a study page's template reads.
type StudyPage struct {
	Page
	ID           string
	Header       []KV
	Charts       []Chart
	Frontier     *Chart
	FrontierNote string
	FigureNames  []string
	Points       []PointRow
	Invalid      int
}

// WriteStudy writes the HTML page of a study.
func WriteStudy(w io.Writer, s *study.Aggregate, o StudyOptions) error {
	p, err := NewStudyPage(s, o)
	if err != nil {
		return err
	}
	return execute(w, "study", p)
}

// axisLabel is a setting's value as text.
func axisLabel(v any) string {
	switch x := v.(type) {
	case nil:
		return "—"
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	default:
		return fmt.Sprint(x)
	}
}

// asNumber returns v as a float when it is a number.
func asNumber(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	}
	return 0, false
}

// NewStudyPage builds the view of a study page.
func NewStudyPage(s *study.Aggregate, o StudyOptions) (*StudyPage, error) {
	if s == nil {
		return nil, fmt.Errorf("report: no study")
	}
	p := &StudyPage{Page: newBase("Study "+s.StudyID, o.Options), ID: s.StudyID}
	end := "—"
	if s.EndUnixNS != nil {
		end = wall(*s.EndUnixNS)
	}
	var axes []string
	for _, a := range s.Axes {
		vals := make([]string, len(a.Values))
		for i, v := range a.Values {
			vals[i] = axisLabel(v)
		}
		axes = append(axes, a.Key+" ∈ {"+strings.Join(vals, ", ")+"}")
	}
	if len(axes) == 0 {
		axes = []string{"an explicit list of points"}
	}
	p.Header = []KV{
		{"study", s.StudyID + " (" + orNM(s.Name) + ")"},
		{"state", orNM(s.State)},
		{"when", wall(s.StartUnixNS) + " → " + end},
		{"base experiment", orNM(s.Base)},
		{"study file", orNM(s.StudyFile)},
		{"axes", strings.Join(axes, "; ")},
		{"points × cycles", fmt.Sprintf("%d × %d (order %s, seed %d, gap %g s)", len(s.Points), s.Cycles, orNM(s.Order), s.Seed, s.GapS)},
		{"lemctl", orNM(s.LemctlVersion)},
	}
	names := figureNames(s)
	p.FigureNames = names
	for _, name := range names {
		if len(s.Axes) == 0 {
			ch, err := listChart(s, name)
			if err != nil {
				return nil, err
			}
			if ch != nil {
				p.Charts = append(p.Charts, *ch)
			}
			continue
		}
		for ai := range s.Axes {
			ch, err := axisChart(s, name, ai)
			if err != nil {
				return nil, err
			}
			if ch != nil {
				p.Charts = append(p.Charts, *ch)
			}
		}
	}
	fr := o.Frontier
	if fr == nil {
		fr = &Frontier{}
		p.FrontierNote = "No frontier was given to this page: the points are drawn unmarked (`lemctl report STUDY_ID` marks the frontier and recommended point of `lemctl frontier STUDY_ID`)."
	} else if fr.Why != "" {
		p.FrontierNote = "Recommended: " + fr.Why
	}
	on := map[string]bool{}
	for _, id := range fr.Points {
		on[id] = true
	}
	ch, err := frontierChart(s, fr)
	if err != nil {
		return nil, err
	}
	p.Frontier = ch
	for _, pt := range s.Points {
		row := PointRow{ID: pt.ID, Settings: settingsText(pt.Settings), Cycles: strconv.Itoa(len(pt.Experiments)),
			Valid: "valid", Frontier: on[pt.ID], Recommended: pt.ID == fr.Recommended}
		if !pt.Valid {
			row.Valid = "INVALID"
			p.Invalid++
		}
		for _, name := range names {
			row.Figures = append(row.Figures, statsText(pt.Figures[name], infoOf(name).Unit))
		}
		row.Findings = findingRows(pt.Findings, nil, nil)
		p.Points = append(p.Points, row)
	}
	return p, nil
}

// figureNames lists the figures some point holds, in study.Figures' order, then any others.
func figureNames(s *study.Aggregate) []string {
	have := map[string]bool{}
	for _, pt := range s.Points {
		for k, st := range pt.Figures {
			if st != nil && st.Mean != nil {
				have[k] = true
			}
		}
	}
	var out []string
	for _, f := range study.Figures {
		if have[f] {
			out = append(out, f)
			delete(have, f)
		}
	}
	return append(out, sortedKeys(have)...)
}

func settingsText(m map[string]any) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, k+"="+axisLabel(m[k]))
	}
	return strings.Join(parts, ", ")
}

func statsText(s *results.Stats, unit string) string {
	if s == nil || s.Mean == nil {
		return NotMeasured
	}
	out := g(s.Mean, unit)
	if s.CI95Half != nil {
		out += " ± " + gf(*s.CI95Half, "")
	}
	return fmt.Sprintf("%s (n=%d)", out, s.N)
}

// axisChart draws a figure against axis ai: one line per combination of the other axes, the
// mean over cycles with its 95 % interval as a band.
func axisChart(s *study.Aggregate, name string, ai int) (*Chart, error) {
	axis := s.Axes[ai]
	fi := infoOf(name)
	numeric := true
	for _, v := range axis.Values {
		if _, ok := asNumber(v); !ok {
			numeric = false
		}
	}
	xOf := func(v any) (float64, bool) {
		if numeric {
			return asNumber(v)
		}
		for i, av := range axis.Values {
			if axisLabel(av) == axisLabel(v) {
				return float64(i), true
			}
		}
		return 0, false
	}
	type pt struct{ x, mean, lo, hi float64 }
	groups := map[string][]pt{}
	var order []string
	for _, p := range s.Points {
		st := p.Figures[name]
		if st == nil || st.Mean == nil {
			continue
		}
		x, ok := xOf(p.Settings[axis.Key])
		if !ok {
			continue
		}
		var rest []string
		for _, other := range s.Axes {
			if other.Key != axis.Key {
				rest = append(rest, other.Key+"="+axisLabel(p.Settings[other.Key]))
			}
		}
		key := strings.Join(rest, ", ")
		if _, ok := groups[key]; !ok {
			order = append(order, key)
		}
		lo, hi := *st.Mean, *st.Mean
		if st.CI95Low != nil && st.CI95High != nil {
			lo, hi = *st.CI95Low, *st.CI95High
		}
		groups[key] = append(groups[key], pt{x, *st.Mean, lo, hi})
	}
	if len(order) == 0 {
		return nil, nil
	}
	title := fmt.Sprintf("%s against %s", fi.Label, axis.Key)
	pl := newPlot(title, axis.Key, fmt.Sprintf("%s (%s)", fi.Label, fi.Unit))
	ch := &Chart{ID: slug(name + "-by-" + axis.Key), Title: title}
	var notes []string
	if len(order) > len(Palette) {
		notes = append(notes, fmt.Sprintf("%d combinations of the other axes: the first %d drawn, the table lists all.", len(order), len(Palette)))
		order = order[:len(Palette)]
	}
	for i, key := range order {
		pts := groups[key]
		sort.Slice(pts, func(a, b int) bool { return pts[a].x < pts[b].x })
		xs, lo, hi := make([]float64, len(pts)), make([]float64, len(pts)), make([]float64, len(pts))
		xys := make(plotter.XYs, len(pts))
		for k, q := range pts {
			xs[k], lo[k], hi[k] = q.x, q.lo, q.hi
			xys[k] = plotter.XY{X: q.x, Y: q.mean}
		}
		if err := band(pl, i, xs, lo, hi); err != nil {
			return nil, err
		}
		label := key
		if label == "" {
			label = "mean over cycles"
		}
		if err := line(pl, label, i, xys, false); err != nil {
			return nil, err
		}
		sc, err := plotter.NewScatter(xys)
		if err != nil {
			return nil, err
		}
		sc.GlyphStyle.Color, sc.GlyphStyle.Shape, sc.GlyphStyle.Radius = colour(i), draw.CircleGlyph{}, vg.Points(2.5)
		pl.Add(sc)
		ch.Series++
		ch.Points += len(xys)
	}
	if !numeric {
		labels := make([]string, len(axis.Values))
		for i, v := range axis.Values {
			labels[i] = axisLabel(v)
		}
		pl.NominalX(labels...)
	}
	notes = append(notes, "Lines: the mean over cycles; bands: its 95 % interval (none with one cycle).")
	svg, err := svgOf(chartH, pl)
	if err != nil {
		return nil, err
	}
	ch.SVG, ch.Note = svg, strings.Join(notes, " ")
	return ch, nil
}

// listChart draws a figure over an explicit list of points.
func listChart(s *study.Aggregate, name string) (*Chart, error) {
	fi := infoOf(name)
	var xs, lo, hi []float64
	var xys plotter.XYs
	labels := make([]string, len(s.Points))
	for i, p := range s.Points {
		labels[i] = p.ID
		st := p.Figures[name]
		if st == nil || st.Mean == nil {
			continue
		}
		l, h := *st.Mean, *st.Mean
		if st.CI95Low != nil && st.CI95High != nil {
			l, h = *st.CI95Low, *st.CI95High
		}
		xs, lo, hi = append(xs, float64(i)), append(lo, l), append(hi, h)
		xys = append(xys, plotter.XY{X: float64(i), Y: *st.Mean})
	}
	if len(xys) == 0 {
		return nil, nil
	}
	title := fmt.Sprintf("%s by point", fi.Label)
	pl := newPlot(title, "point", fmt.Sprintf("%s (%s)", fi.Label, fi.Unit))
	if err := band(pl, 0, xs, lo, hi); err != nil {
		return nil, err
	}
	if err := line(pl, "mean over cycles", 0, xys, false); err != nil {
		return nil, err
	}
	pl.NominalX(labels...)
	svg, err := svgOf(chartH, pl)
	if err != nil {
		return nil, err
	}
	return &Chart{ID: slug(name + "-by-point"), Title: title, SVG: svg, Series: 1, Points: len(xys),
		Note: "Line: the mean over cycles; band: its 95 % interval."}, nil
}

// frontierChart draws every point (throughput against energy per output token, with the 95 %
// intervals as error bars), the frontier through its points and the recommended point.
func frontierChart(s *study.Aggregate, fr *Frontier) (*Chart, error) {
	type pt struct {
		id                       string
		x, y, xlo, xhi, ylo, yhi float64
	}
	var all []pt
	for _, p := range s.Points {
		e, t := p.Figures[study.FigureJPerOutputToken], p.Figures[study.FigureOutputTokensPerS]
		if e == nil || e.Mean == nil || t == nil || t.Mean == nil {
			continue
		}
		q := pt{id: p.ID, x: *t.Mean, y: *e.Mean, xlo: *t.Mean, xhi: *t.Mean, ylo: *e.Mean, yhi: *e.Mean}
		if t.CI95Low != nil && t.CI95High != nil {
			q.xlo, q.xhi = *t.CI95Low, *t.CI95High
		}
		if e.CI95Low != nil && e.CI95High != nil {
			q.ylo, q.yhi = *e.CI95Low, *e.CI95High
		}
		all = append(all, q)
	}
	if len(all) == 0 {
		return nil, nil
	}
	title := "Pareto frontier: energy per output token against throughput"
	pl := newPlot(title, "throughput (output tokens/s)", "energy per output token (J)")
	ch := &Chart{ID: "frontier", Title: title}
	var xys plotter.XYs
	var errs []struct{ x, y, xlo, xhi, ylo, yhi float64 }
	labels := plotter.XYLabels{}
	for _, q := range all {
		xys = append(xys, plotter.XY{X: q.x, Y: q.y})
		errs = append(errs, struct{ x, y, xlo, xhi, ylo, yhi float64 }{q.x, q.y, q.xlo, q.xhi, q.ylo, q.yhi})
		labels.XYs = append(labels.XYs, plotter.XY{X: q.x, Y: q.y})
		labels.Labels = append(labels.Labels, " "+q.id)
	}
	for _, e := range errs {
		for _, seg := range []plotter.XYs{{{X: e.xlo, Y: e.y}, {X: e.xhi, Y: e.y}}, {{X: e.x, Y: e.ylo}, {X: e.x, Y: e.yhi}}} {
			if seg[0] == seg[1] {
				continue
			}
			l, err := plotter.NewLine(seg)
			if err != nil {
				return nil, err
			}
			l.LineStyle.Color = faded(colour(4), 0xc0)
			pl.Add(l)
		}
	}
	sc, err := plotter.NewScatter(xys)
	if err != nil {
		return nil, err
	}
	sc.GlyphStyle.Color, sc.GlyphStyle.Shape, sc.GlyphStyle.Radius = colour(4), draw.CircleGlyph{}, vg.Points(3)
	pl.Add(sc)
	pl.Legend.Add("point (mean, 95 % intervals)", sc)
	ch.Points += len(xys)
	ch.Series++
	on := map[string]bool{}
	for _, id := range fr.Points {
		on[id] = true
	}
	var front plotter.XYs
	var rec *pt
	for i, q := range all {
		if on[q.id] {
			front = append(front, plotter.XY{X: q.x, Y: q.y})
		}
		if q.id == fr.Recommended {
			rec = &all[i]
		}
	}
	sort.Slice(front, func(a, b int) bool { return front[a].X < front[b].X })
	if len(front) > 0 {
		if err := line(pl, "Pareto frontier", 3, front, false); err != nil {
			return nil, err
		}
		fs, err := plotter.NewScatter(front)
		if err != nil {
			return nil, err
		}
		fs.GlyphStyle.Color, fs.GlyphStyle.Shape, fs.GlyphStyle.Radius = colour(3), draw.CircleGlyph{}, vg.Points(3.5)
		pl.Add(fs)
		ch.Series++
		ch.Points += len(front)
	}
	if rec != nil {
		rs, err := plotter.NewScatter(plotter.XYs{{X: rec.x, Y: rec.y}})
		if err != nil {
			return nil, err
		}
		rs.GlyphStyle.Color, rs.GlyphStyle.Shape, rs.GlyphStyle.Radius = colour(2), draw.PyramidGlyph{}, vg.Points(7)
		pl.Add(rs)
		pl.Legend.Add("recommended: "+rec.id, rs)
		ch.Series++
		ch.Points++
	}
	lb, err := plotter.NewLabels(labels)
	if err != nil {
		return nil, err
	}
	for i := range lb.TextStyle {
		lb.TextStyle[i].Font = sans(8)
	}
	pl.Add(lb)
	pad := func(lo, hi float64) (float64, float64) {
		d := (hi - lo) * 0.08
		if d == 0 {
			d = math.Max(math.Abs(hi)*0.05, 1e-9)
		}
		return lo - d, hi + d
	}
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, q := range all {
		xmin, xmax = math.Min(xmin, q.xlo), math.Max(xmax, q.xhi)
		ymin, ymax = math.Min(ymin, q.ylo), math.Max(ymax, q.yhi)
	}
	pl.X.Min, pl.X.Max = pad(xmin, xmax)
	pl.Y.Min, pl.Y.Max = pad(ymin, ymax)
	svg, err := svgOf(chartH+0.8*vg.Inch, pl)
	if err != nil {
		return nil, err
	}
	ch.SVG = svg
	ch.Note = "Lower and to the right is better."
	return ch, nil
}
