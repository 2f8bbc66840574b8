package report

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/lemctl/lemctl/host/results"
)

// checkPage asserts what every report page must be: the sections present, every chart with
// data drawn in a palette colour, nothing that would be fetched, no script.
func checkPage(t *testing.T, page []byte, sections []string, minCharts int) *html.Node {
	t.Helper()
	if refs := NetworkRefs(page); len(refs) > 0 {
		t.Errorf("page references what a browser would fetch: %q", refs)
	}
	if bytes.Contains(bytes.ToLower(page), []byte("<script")) {
		t.Error("page has a script; it must read without JavaScript")
	}
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	var charts []*html.Node
	walk(doc, func(n *html.Node) {
		if n.Type != html.ElementNode {
			return
		}
		if id := attr(n, "id"); id != "" {
			if ids[id] {
				t.Errorf("duplicate id %q", id)
			}
			ids[id] = true
		}
		if n.Data == "figure" && attr(n, "class") == "chart" {
			charts = append(charts, n)
		}
	})
	for _, s := range sections {
		if !ids[s] {
			t.Errorf("section %q missing", s)
		}
	}
	if len(charts) < minCharts {
		t.Errorf("%d charts, want at least %d", len(charts), minCharts)
	}
	for _, c := range charts {
		id := attr(c, "id")
		if pts, _ := strconv.Atoi(attr(c, "data-points")); pts <= 0 {
			t.Errorf("chart %s: data-points %q", id, attr(c, "data-points"))
		}
		coloured, svgs := 0, 0
		walk(c, func(n *html.Node) {
			if n.Type != html.ElementNode {
				return
			}
			if n.Data == "svg" {
				svgs++
			}
			if n.Data == "path" && len(attr(n, "d")) > 10 {
				style := strings.ToUpper(attr(n, "style"))
				for _, p := range Palette[:7] {
					if strings.Contains(style, fmt.Sprintf("#%02X%02X%02X", p.R, p.G, p.B)) {
						coloured++
						break
					}
				}
			}
		})
		if svgs != 1 || coloured == 0 {
			t.Errorf("chart %s: %d svg, %d paths in a palette colour: no data drawn", id, svgs, coloured)
		}
	}
	return doc
}

func walk(n *html.Node, f func(*html.Node)) {
	f(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, f)
	}
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func text(n *html.Node) string {
	var b strings.Builder
	walk(n, func(c *html.Node) {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
	})
	return b.String()
}

func keep(t *testing.T, name string, page []byte) {
	if dir := os.Getenv("LEM_REPORT_KEEP"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, name), page, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var experimentSections = []string{"header", "timeline", "energy", "efficiency", "latency", "ranks", "environment", "overhead", "provenance"}

func TestExperimentPage(t *testing.T) {
	e := experimentOf(t, "exp-a", twoGPUs("exp-a", 200, 15e6))
	var buf bytes.Buffer
	if err := WriteExperiment(&buf, e, Options{LemctlVersion: "test"}); err != nil {
		t.Fatal(err)
	}
	keep(t, "experiment.html", buf.Bytes())
	// Timelines of two kinds (gpu, package), the energy chart and the latency CDFs.
	doc := checkPage(t, buf.Bytes(), experimentSections, 4)
	body := text(doc)
	for _, want := range []string{
		"low_counter_updates", "lengthen the window", // every finding, with its advice
		"Temperature: not measured", "Clock frequency: not measured", // absent data is said
		"phase: measured", "start of each repeat", // the phases
		"prefill", "decode", "cuda:1", "GPU-1", "repeat 2",
		"TTFT p50 / p90 / p99", "measurement overhead",
	} {
		if !strings.Contains(body, want) && !bytes.Contains(buf.Bytes(), []byte(want)) {
			t.Errorf("page lacks %q", want)
		}
	}
	// The warning verdict is valid, and the warnings come after any error (none here).
	if !strings.Contains(body, "VALID (2 warning(s))") {
		t.Errorf("verdict not shown: %s", body[:min(400, len(body))])
	}
}

func TestExperimentPageErrorsFirstAndUncertainty(t *testing.T) {
	ws := twoGPUs("exp-e", 200, 15e6)
	ws[1].Findings = append(ws[1].Findings, results.Finding{Code: "baseline_unstable", Severity: results.SeverityError, Message: "the idle baseline drifted"})
	e := experimentOf(t, "exp-e", ws)
	// A newer aggregate's uncertainty of a domain is shown where it is given.
	for i := range e.Aggregated.Energy.Domains {
		if e.Aggregated.Energy.Domains[i].ID == "GPU-0" {
			e.Aggregated.Energy.Domains[i].UncertaintyJ = results.Float(1.25)
		}
	}
	p, err := NewExperimentPage(e, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Valid || !strings.HasPrefix(p.Verdict, "INVALID (1 error(s), 2 warning(s))") {
		t.Errorf("verdict %q", p.Verdict)
	}
	if p.Findings[0].Code != "baseline_unstable" || p.Findings[0].Rank != "1" {
		t.Errorf("errors must come first: %+v", p.Findings)
	}
	found := false
	for _, d := range p.Domains {
		if d.ID == "GPU-0" {
			found = d.Uncertainty == "± 1.25 J"
		} else if d.Uncertainty != "not given" {
			t.Errorf("domain %s uncertainty %q", d.ID, d.Uncertainty)
		}
	}
	if !found {
		t.Errorf("GPU-0's uncertainty not shown: %+v", p.Domains)
	}
}

// TestExperimentPagePhaseAndPerTokenUncertainty: prefill/decode energy and the per-token figures
// carry the results' standard uncertainty on the page, as in `results show`.
func TestExperimentPagePhaseAndPerTokenUncertainty(t *testing.T) {
	e := experimentOf(t, "exp-u", twoGPUs("exp-u", 200, 15e6))
	en := &e.Aggregated.Energy
	en.Phases.PrefillJ, en.Phases.PrefillUncertaintyJ = results.Float(2), results.Float(0.125)
	en.Phases.DecodeJ, en.Phases.DecodeUncertaintyJ = results.Float(30), results.Float(0.5)
	en.JPerOutputToken, en.JPerOutputTokenUncertainty = results.Float(1.5), results.Float(0.02)
	p, err := NewExperimentPage(e, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, kv := range p.Figures {
		got[kv.K] = kv.V
	}
	if want := "2 ± 0.125 J / 30 ± 0.5 J"; got["prefill / decode"] != want {
		t.Errorf("prefill / decode %q, want %q", got["prefill / decode"], want)
	}
	if !strings.HasPrefix(got["J per output token"], "1.5 ± 0.02 J") {
		t.Errorf("J per output token %q", got["J per output token"])
	}
}

func TestExperimentPageWithoutRaws(t *testing.T) {
	e := experimentOf(t, "exp-n", twoGPUs("exp-n", 200, 15e6))
	e.Raws = nil
	var buf bytes.Buffer
	if err := WriteExperiment(&buf, e, Options{}); err != nil {
		t.Fatal(err)
	}
	doc := checkPage(t, buf.Bytes(), experimentSections, 2)
	body := text(doc)
	for _, want := range []string{"Power timeline: not measured here", "the aggregate's percentiles", "Plugins: not measured here"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestStudyPage(t *testing.T) {
	s := smallStudy()
	var buf bytes.Buffer
	if err := WriteStudy(&buf, s, StudyOptions{}); err != nil {
		t.Fatal(err)
	}
	keep(t, "study.html", buf.Bytes())
	// 3 figures × 2 axes, and the frontier.
	doc := checkPage(t, buf.Bytes(), []string{"header", "figures", "frontier", "points"}, 7)
	body := text(doc)
	for _, want := range []string{"energy per output token against workload.batch_size", "throughput against engine.provider",
		"thermal_throttle", "1 point(s) INVALID", "engine.provider=cuda"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	p, err := NewStudyPage(s, StudyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range p.Points {
		if r.Frontier || r.Recommended {
			t.Errorf("point %s marked without a frontier decision", r.ID)
		}
	}
	if !strings.Contains(p.FrontierNote, "No frontier was given") {
		t.Errorf("frontier note %q does not say no frontier was given", p.FrontierNote)
	}
	// With `lemctl frontier`'s decision, the recommended point is marked.
	p, err = NewStudyPage(s, StudyOptions{Frontier: &Frontier{Points: []string{"p04", "p05"}, Recommended: "p04", Why: "lowest J/token"}})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Points[4].Recommended || !strings.Contains(p.Frontier.SVG, "recommended: p04") {
		t.Error("recommended point not marked")
	}
	var on []string
	for _, r := range p.Points {
		if r.Frontier {
			on = append(on, r.ID)
		}
	}
	if strings.Join(on, ",") != "p04,p05" || p.FrontierNote != "Recommended: lowest J/token" {
		t.Errorf("frontier %v note %q, want p04,p05 and the given reason", on, p.FrontierNote)
	}
}

func TestStudyPageListOfPoints(t *testing.T) {
	s := smallStudy()
	s.Axes = nil
	var buf bytes.Buffer
	if err := WriteStudy(&buf, s, StudyOptions{}); err != nil {
		t.Fatal(err)
	}
	checkPage(t, buf.Bytes(), []string{"header", "figures", "frontier", "points"}, 4)
}

// fixedComparer is a Comparer as `lemctl report --compare` plugs in `lemctl compare`'s.
type fixedComparer struct{}

func (fixedComparer) Compare(a, b *results.Aggregated) ([]FigureDiff, string, error) {
	return []FigureDiff{{Figure: "j_per_output_token", A: a.RepeatStats["j_per_output_token"], B: b.RepeatStats["j_per_output_token"],
		Diff: results.Float(-1), DiffLow: results.Float(-1.5), DiffHigh: results.Float(-0.5), Relative: results.Float(-0.5),
		Verdict: "B better (compare's verdict)", Better: 1}}, "lemctl compare", nil
}

func TestComparePage(t *testing.T) {
	a := experimentOf(t, "exp-a", twoGPUs("exp-a", 200, 15e6))
	b := experimentOf(t, "exp-b", twoGPUs("exp-b", 150, 12e6))
	var buf bytes.Buffer
	if err := WriteCompare(&buf, Comparison{A: &a, B: &b, Comparer: fixedComparer{}}, Options{}); err != nil {
		t.Fatal(err)
	}
	keep(t, "compare.html", buf.Bytes())
	doc := checkPage(t, buf.Bytes(), []string{"header", "differences", "side-by-side", "side-a", "side-b"}, 5)
	body := text(doc)
	if !strings.Contains(body, "j_per_output_token") || !strings.Contains(body, "B better (compare's verdict)") || !strings.Contains(body, "lemctl compare") {
		t.Errorf("differences not shown")
	}
	p, err := NewComparePage(Comparison{A: &a, B: &b, Comparer: fixedComparer{}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Rows) != 1 || p.Rows[0].Class != "better" || p.Rows[0].Interval != "[-1.5, -0.5]" || p.Method != "lemctl compare" {
		t.Errorf("rows %+v method %q", p.Rows, p.Method)
	}
	if _, err := NewComparePage(Comparison{A: &a, B: &b}, Options{}); err == nil || !strings.Contains(err.Error(), "Comparer") {
		t.Errorf("a compare page without a Comparer: err %v, want one naming the Comparer", err)
	}
}

func TestNetworkRefs(t *testing.T) {
	bad := `<img src="http://x/a.png"><link href='//cdn/x.css'><div style="background:url(https://x/y)"></div><a href="other.html">x</a><style>@import "x.css";</style>`
	good := `<a href="#energy">e</a><img src="data:image/png;base64,AAAA"><svg xmlns="http://www.w3.org/2000/svg"></svg><p>see https://example.org</p>`
	if got := NetworkRefs([]byte(bad)); len(got) != 5 {
		t.Errorf("bad page: %d refs %q, want 5", len(got), got)
	}
	if got := NetworkRefs([]byte(good)); len(got) != 0 {
		t.Errorf("good page: refs %q", got)
	}
}

func TestDownsampleKeepsExtremes(t *testing.T) {
	var ts, ys []float64
	for i := range 10000 {
		ts, ys = append(ts, float64(i)), append(ys, float64(i%7))
	}
	ys[4321], ys[8765] = 1000, -1000
	dt, dy := downsample(ts, ys, 600)
	if len(dt) > 600 || len(dt) < 300 {
		t.Fatalf("%d points", len(dt))
	}
	var hi, lo bool
	for i := range dt {
		hi = hi || dy[i] == 1000 && dt[i] == 4321
		lo = lo || dy[i] == -1000 && dt[i] == 8765
		if i > 0 && dt[i] < dt[i-1] {
			t.Fatal("time not ascending")
		}
	}
	if !hi || !lo {
		t.Error("extremes lost")
	}
}

// TestTimelineDrawsClocks: where a meter read the SM clock (nvml), the timeline draws it on its
// own axis; where none did, the chart says the clock was not measured.
func TestTimelineDrawsClocks(t *testing.T) {
	e := experimentOf(t, "exp-c", twoGPUs("exp-c", 200, 15e6))
	clocked := 0
	for _, r := range e.Raws {
		for i := range r.Energy.Domains {
			d := &r.Energy.Domains[i]
			if d.Kind != "gpu" {
				continue
			}
			for k := range d.Timeline {
				d.Timeline[k].SMClockMHz = results.Float(1410 - float64(k%3)*15)
				clocked++
			}
		}
	}
	if clocked == 0 {
		t.Fatal("the fixture has no GPU timeline samples")
	}
	p, err := NewExperimentPage(e, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var gpu, other *Chart
	for i := range p.Timeline {
		c := &p.Timeline[i]
		if strings.Contains(string(c.SVG), "SM clock (MHz)") {
			gpu = c
		} else {
			other = c
		}
	}
	if gpu == nil || strings.Contains(gpu.Note, "Clock frequency: not measured") {
		t.Errorf("the GPU timeline does not draw the SM clock: %+v", gpu)
	}
	if other == nil || !strings.Contains(other.Note, "Clock frequency: not measured") {
		t.Errorf("a timeline without clocks should say so: %+v", other)
	}
}
