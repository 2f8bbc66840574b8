package report

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"regexp"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Palette is the Okabe–Ito colour-blind-safe palette (black last), used by every chart in the
// same order.
var Palette = []color.RGBA{
	{0x00, 0x72, 0xB2, 0xff}, // blue
	{0xE6, 0x9F, 0x00, 0xff}, // orange
	{0x00, 0x9E, 0x73, 0xff}, // bluish green
	{0xD5, 0x5E, 0x00, 0xff}, // vermillion
	{0x56, 0xB4, 0xE9, 0xff}, // sky blue
	{0xCC, 0x79, 0xA7, 0xff}, // reddish purple
	{0xF0, 0xE4, 0x42, 0xff}, // yellow
	{0x00, 0x00, 0x00, 0xff}, // black
}

// colour returns the palette's i-th colour (cycling).
func colour(i int) color.RGBA { return Palette[i%len(Palette)] }

// faded returns c with alpha a (0–255), for bands.
func faded(c color.RGBA, a uint8) color.NRGBA { return color.NRGBA{c.R, c.G, c.B, a} }

// Chart is one rendered chart: its SVG and what it drew (the page shows the counts, and tests
// read them back from the DOM).
type Chart struct {
	ID     string
	Title  string
	SVG    string
	Series int
	Points int
	// Note is shown under the chart (downsampling, what is not measured, …).
	Note string
}

// chartSize is the size of every chart (the same figure style on every page).
var (
	chartW = 7.5 * vg.Inch
	chartH = 3.2 * vg.Inch
)

// newPlot returns a plot in the reports' style: title, axis labels with units, a light grid.
func newPlot(title, xLabel, yLabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font = sans(12)
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = sans(11)
		a.Tick.Label.Font = sans(10)
	}
	g := plotter.NewGrid()
	g.Vertical.Color = color.Gray{0xdd}
	g.Horizontal.Color = color.Gray{0xdd}
	p.Add(g)
	p.Legend.Top = true
	p.Legend.TextStyle.Font = sans(9)
	p.Legend.Padding = vg.Points(2)
	return p
}

// sans is the charts' font: Liberation Sans, the one font the page embeds.
func sans(size float64) font.Font {
	return font.Font{Typeface: "Liberation", Variant: "Sans", Size: vg.Points(size)}
}

// svgOf draws plots stacked vertically (sharing their widths) on one canvas of width × height
// and returns the SVG element, without the XML prelude, ready to inline. Legends go in a strip
// right of the plots, so that they never hide data.
func svgOf(height vg.Length, plots ...*plot.Plot) (string, error) {
	c := vgsvg.New(chartW, height)
	dc := draw.New(c)
	legends := make([]plot.Legend, len(plots))
	var lw vg.Length
	for i, p := range plots {
		r := p.Legend.Rectangle(dc)
		lw = max(lw, r.Max.X-r.Min.X)
		legends[i] = p.Legend
		p.Legend = plot.NewLegend()
	}
	const gap = 6
	if lw > 0 {
		lw = min(lw+vg.Points(gap), chartW*2/5)
	}
	area := draw.Crop(dc, 0, -lw, 0, 0)
	tiles := [][]draw.Canvas{{area}}
	if len(plots) > 1 {
		rows := make([][]*plot.Plot, len(plots))
		for i, p := range plots {
			rows[i] = []*plot.Plot{p}
		}
		tiles = plot.Align(rows, draw.Tiles{Rows: len(plots), Cols: 1, PadY: vg.Points(6)}, area)
	}
	for i, p := range plots {
		tc := tiles[i][0]
		p.Draw(tc)
		if lw > 0 {
			lc := tc
			lc.Min.X, lc.Max.X = tc.Max.X+vg.Points(gap), dc.Max.X
			lc.Max.Y -= vg.Points(14) // below the title's line
			legends[i].Top, legends[i].Left = true, true
			legends[i].Draw(lc)
		}
	}
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return "", fmt.Errorf("draw chart: %w", err)
	}
	return inlineSVG(buf.String()), nil
}

var (
	xmlPrelude  = regexp.MustCompile(`^<\?xml[^>]*\?>\s*(<!--[^>]*-->\s*)?`)
	svgSizeAttr = regexp.MustCompile(`^<svg width="[^"]*" height="[^"]*"`)
)

// inlineSVG strips the XML prelude and the fixed size so that the page's CSS sizes the chart.
func inlineSVG(s string) string {
	s = xmlPrelude.ReplaceAllString(s, "")
	return svgSizeAttr.ReplaceAllString(s, `<svg class="plot" role="img"`)
}

// line adds a line of xys in palette colour i with a legend entry.
func line(p *plot.Plot, name string, i int, xys plotter.XYs, dashed bool) error {
	l, err := plotter.NewLine(xys)
	if err != nil {
		return fmt.Errorf("chart %q, series %q: %w", p.Title.Text, name, err)
	}
	l.LineStyle.Color = colour(i)
	l.LineStyle.Width = vg.Points(1.5)
	if dashed {
		l.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	}
	p.Add(l)
	if name != "" {
		p.Legend.Add(name, l)
	}
	return nil
}

// band adds a filled band between lo and hi (same xs) in palette colour i.
func band(p *plot.Plot, i int, xs, lo, hi []float64) error {
	if len(xs) == 0 {
		return nil
	}
	pts := make(plotter.XYs, 0, 2*len(xs))
	for k := range xs {
		pts = append(pts, plotter.XY{X: xs[k], Y: hi[k]})
	}
	for k := len(xs) - 1; k >= 0; k-- {
		pts = append(pts, plotter.XY{X: xs[k], Y: lo[k]})
	}
	poly, err := plotter.NewPolygon(pts)
	if err != nil {
		return fmt.Errorf("chart %q: band: %w", p.Title.Text, err)
	}
	poly.Color = faded(colour(i), 0x40)
	poly.LineStyle.Width = 0
	p.Add(poly)
	return nil
}

// rect adds a filled rectangle [x0,x1]×[y0,y1].
func rect(p *plot.Plot, c color.Color, x0, x1, y0, y1 float64) (*plotter.Polygon, error) {
	poly, err := plotter.NewPolygon(plotter.XYs{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}})
	if err != nil {
		return nil, err
	}
	poly.Color = c
	poly.LineStyle.Width = 0
	p.Add(poly)
	return poly, nil
}

// finite reports whether v is a usable coordinate.
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
