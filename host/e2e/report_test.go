package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/lemctl/lemctl/host/report"
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/study"
)

// chromiumBin finds headless Chromium (Debian's `chromium`, which .ci/run installs): absent,
// the test skips with the reason, except under CI where it fails.
func chromiumBin(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed (.ci/run installs Debian's chromium)")
	}
	t.Skip("chromium is not installed: `apt-get install chromium` to run the report's browser test")
	return ""
}

// trap is a proxy that answers nothing and records every request a browser sends it: with
// Chromium's proxy pointed at it and every host name unresolvable, any network request a page
// makes is seen here.
type trap struct {
	ln   net.Listener
	mu   sync.Mutex
	reqs []string
}

func newTrap(t *testing.T) *trap {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &trap{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				line, _ := bufio.NewReader(c).ReadString('\n')
				tr.mu.Lock()
				tr.reqs = append(tr.reqs, strings.TrimSpace(line))
				tr.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return tr
}

// chromiumOwn are the hosts Chromium itself calls in the background (component updates, its
// clock, sign-in), whatever page it shows; a request to any other host came from the page.
var chromiumOwn = []string{"update.googleapis.com", "accounts.google.com", "clients2.google.com", "clientservices.googleapis.com",
	"optimizationguide-pa.googleapis.com", "redirector.gvt1.com", "edgedl.me.gvt1.com", "content-autofill.googleapis.com",
	"safebrowsingohttpgateway.googleapis.com", "www.google.com", "android.clients.google.com"}

// pageRequests returns the requests that did not come from Chromium itself.
func (tr *trap) pageRequests() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []string
	for _, r := range tr.reqs {
		own := false
		for _, h := range chromiumOwn {
			own = own || strings.Contains(r, " "+h+":") || strings.Contains(r, "//"+h+"/") || strings.Contains(r, "//"+h+":")
		}
		if !own && r != "" {
			out = append(out, r)
		}
	}
	return out
}

// browse loads page in headless Chromium with the network trapped and returns its rendered DOM
// and a screenshot.
func browse(t *testing.T, chromium, page string, tr *trap) (*html.Node, []byte) {
	t.Helper()
	dir := t.TempDir()
	shot := filepath.Join(dir, "shot.png")
	args := func(extra ...string) []string {
		return append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
			"--disable-component-update", "--disable-sync", "--user-data-dir=" + filepath.Join(dir, "profile"),
			"--proxy-server=http://" + tr.ln.Addr().String(), "--proxy-bypass-list=<-loopback>",
			"--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"}, extra...)
	}
	var dom bytes.Buffer
	for _, run := range []struct {
		extra []string
		out   *bytes.Buffer
	}{{[]string{"--dump-dom", "file://" + page}, &dom}, {[]string{"--screenshot=" + shot, "--window-size=1280,4000", "--hide-scrollbars", "file://" + page}, nil}} {
		cmd := exec.Command(chromium, args(run.extra...)...)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if run.out != nil {
			cmd.Stdout = run.out
		}
		done := make(chan error, 1)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("chromium %v: %v\n%s", run.extra, err, errb.String())
			}
		case <-time.After(3 * time.Minute):
			_ = cmd.Process.Kill()
			t.Fatalf("chromium %v did not finish", run.extra)
		}
	}
	doc, err := html.Parse(&dom)
	if err != nil {
		t.Fatal(err)
	}
	img, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	if keep := os.Getenv("LEM_REPORT_KEEP"); keep != "" { // to look at what the browser showed
		_ = copyFile(shot, filepath.Join(keep, filepath.Base(page)+".png"))
		_ = copyFile(page, filepath.Join(keep, filepath.Base(page)))
	}
	return doc, img
}

func walkDOM(n *html.Node, f func(*html.Node)) {
	f(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walkDOM(c, f)
	}
}

func attrOf(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// checkRendered asserts on the DOM Chromium rendered: every section, every chart an SVG with
// data drawn in a palette colour, nothing loaded from outside the page; and that the screenshot
// is not blank and shows the charts' colours.
func checkRendered(t *testing.T, name string, doc *html.Node, shot []byte, sections []string, minCharts int) {
	t.Helper()
	ids := map[string]bool{}
	charts := 0
	walkDOM(doc, func(n *html.Node) {
		if n.Type != html.ElementNode {
			return
		}
		ids[attrOf(n, "id")] = true
		for _, k := range []string{"src", "href", "xlink:href"} {
			if v := attrOf(n, k); v != "" && !strings.HasPrefix(v, "data:") && !strings.HasPrefix(v, "#") {
				t.Errorf("%s: <%s %s=%q> loads from outside the page", name, n.Data, k, v)
			}
		}
		if n.Data == "script" || n.Data == "link" || n.Data == "iframe" {
			t.Errorf("%s: page has a <%s>", name, n.Data)
		}
		if n.Data != "figure" || attrOf(n, "class") != "chart" {
			return
		}
		charts++
		pts, _ := strconv.Atoi(attrOf(n, "data-points"))
		drawn := 0
		walkDOM(n, func(c *html.Node) {
			if c.Type != html.ElementNode || c.Data != "path" || len(attrOf(c, "d")) < 10 {
				return
			}
			style := strings.ToUpper(attrOf(c, "style"))
			for _, p := range report.Palette[:7] {
				if strings.Contains(style, fmt.Sprintf("#%02X%02X%02X", p.R, p.G, p.B)) {
					drawn++
					return
				}
			}
		})
		if pts <= 0 || drawn == 0 {
			t.Errorf("%s: chart %s has no data drawn (%d points, %d coloured paths)", name, attrOf(n, "id"), pts, drawn)
		}
	})
	for _, s := range sections {
		if !ids[s] {
			t.Errorf("%s: section %q missing from the rendered page", name, s)
		}
	}
	if charts < minCharts {
		t.Errorf("%s: %d charts rendered, want at least %d", name, charts, minCharts)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("%s: screenshot: %v", name, err)
	}
	b := img.Bounds()
	nonWhite, palette := 0, 0
	blue := report.Palette[0]
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r < 0xf000 || g < 0xf000 || bl < 0xf000 {
				nonWhite++
			}
			if d(r>>8, blue.R) < 8 && d(g>>8, blue.G) < 8 && d(bl>>8, blue.B) < 8 {
				palette++
			}
		}
	}
	total := (b.Dx() / 2) * (b.Dy() / 2)
	if nonWhite < total/50 || palette < 50 {
		t.Errorf("%s: screenshot looks blank: %d of %d sampled pixels not white, %d in the charts' blue", name, nonWhite, total, palette)
	}
}

func d(a uint32, b uint8) uint32 {
	if a > uint32(b) {
		return a - uint32(b)
	}
	return uint32(b) - a
}

// TestReportInBrowser runs synthetic:gpt2-tiny on ONNX Runtime with the scriptable meter (so the
// timeline has data, with an idle baseline, a warm-up and two repeats), writes its report and
// a small study's with `lemctl report`, and loads both in headless Chromium with the network
// trapped: every section present, every chart drawn, no request to the network, a screenshot
// that is not blank.
func TestReportInBrowser(t *testing.T) {
	chromium := chromiumBin(t)
	plugins := productPlugins(t, "onnx", "fsstore")
	cfg := `name = "report-tiny"

[model]
ref = "synthetic:gpt2-tiny"

[engine]
plugin = "onnx"

[workload]
dataset = "builtin"
prompts = 4
batch_size = 2
max_new_tokens = 8
max_input_tokens = 32
min_window_s = 0
repeats = 2

[workload.decoding]
ignore_eos = true

[launch]
devices = "cpu"
processes_per_device = 1

[lifecycle]
baseline_s = 0.5

[lifecycle.warmup]
mode = "fixed"
batches = 1

[energy]
meters = ["example-meter"]

[energy.example-meter]
domains = ["gpu0:gpu:device", "pkg:package:socket"]
steps = [40.0, 90.0]
step_period = "50ms"
idle_power_w = 20.0
update_period = "5ms"
interval = "10ms"
`
	r, res := runExperiment(t, cfg, nil, "--plugin-dir", plugins, "--report")
	if r.code != 0 {
		t.Fatalf("run exited %d\nstderr:\n%s", r.code, r.stderr.String())
	}
	exp := experimentID(t, res)
	page := filepath.Join(res, "reports", exp+".html")
	if !strings.Contains(r.stdout.String(), "report: "+page) {
		t.Errorf("run --report does not name its report %s:\n%s", page, r.stdout.String())
	}
	// `lemctl report` writes the same page.
	r = lemctl(t, nil, "report", exp, "--plugin-dir", pluginDir, "--plugin-dir", plugins, "--results-dir", res)
	if code := r.wait(t, 3*time.Minute); code != 0 || strings.TrimSpace(r.stdout.String()) != "report: "+page {
		t.Fatalf("report exited %d: %s\n%s", code, r.stdout.String(), r.stderr.String())
	}

	// A small study of the two kinds of figures, stored as sweep stores it.
	st := &study.Aggregate{SchemaVersion: study.SchemaVersion, Kind: study.Kind, StudyID: "st-tiny", Name: "batching", Cycles: 3,
		Axes: []study.Axis{{Key: "workload.batch_size", Values: []any{1.0, 2.0, 4.0}}}, State: results.StateCompleted, LemctlVersion: "test"}
	for i, b := range []float64{1, 2, 4} {
		st.Points = append(st.Points, study.PointAggregate{ID: fmt.Sprintf("p%02d", i), Settings: map[string]any{"workload.batch_size": b}, Valid: true,
			Experiments: []string{"a", "b", "c"}, Figures: map[string]*results.Stats{
				study.FigureJPerOutputToken:  results.NewStats([]float64{3 / b, 3.2 / b, 3.1 / b}),
				study.FigureOutputTokensPerS: results.NewStats([]float64{50 * b, 52 * b, 49 * b}),
				study.FigureTTFTP50MS:        results.NewStats([]float64{10 * b, 11 * b, 12 * b}),
			}})
	}
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	studyFile := filepath.Join(res, "studies", "st-tiny", "study.json")
	if err := os.MkdirAll(filepath.Dir(studyFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(studyFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	r = lemctl(t, nil, "report", "st-tiny", "--plugin-dir", pluginDir, "--results-dir", res)
	studyPage := filepath.Join(res, "reports", "st-tiny.html")
	if code := r.wait(t, time.Minute); code != 0 || strings.TrimSpace(r.stdout.String()) != "report: "+studyPage {
		t.Fatalf("report st-tiny exited %d: %s\n%s", code, r.stdout.String(), r.stderr.String())
	}

	tr := newTrap(t)
	// The trap sees a page's request: a control page that loads an image over the network.
	control := filepath.Join(t.TempDir(), "control.html")
	if err := os.WriteFile(control, []byte(`<html><body><p>control</p><img src="http://report-test.invalid/x.png"></body></html>`), 0o644); err != nil {
		t.Fatal(err)
	}
	browse(t, chromium, control, tr)
	if reqs := tr.pageRequests(); len(reqs) == 0 || !strings.Contains(strings.Join(reqs, " "), "report-test.invalid") {
		t.Fatalf("the network trap did not see the control page's request: %q", reqs)
	}
	tr.mu.Lock()
	tr.reqs = nil
	tr.mu.Unlock()

	doc, shot := browse(t, chromium, page, tr)
	// Two domain kinds' timelines, the energy chart and the latency CDFs.
	checkRendered(t, "experiment", doc, shot, []string{"header", "timeline", "energy", "efficiency", "latency", "ranks", "environment", "overhead", "provenance"}, 4)
	var text strings.Builder
	walkDOM(doc, func(n *html.Node) {
		if n.Type == html.TextNode {
			text.WriteString(n.Data)
		}
	})
	for _, want := range []string{"phase: idle_baseline", "phase: warmup", "phase: measured", "start of each repeat", "prefill (rank 0", "decode (rank 0",
		"synthetic:gpt2-tiny", "example-meter", "Temperature: not measured"} {
		if !strings.Contains(text.String(), want) && !strings.Contains(renderedSVGText(doc), want) {
			t.Errorf("experiment page lacks %q", want)
		}
	}
	checkOffline(t, chromium, page, doc)
	doc, shot = browse(t, chromium, studyPage, tr)
	checkRendered(t, "study", doc, shot, []string{"header", "figures", "frontier", "points"}, 4)
	checkOffline(t, chromium, studyPage, doc)
	if reqs := tr.pageRequests(); len(reqs) > 0 {
		t.Errorf("the reports made network requests: %q", reqs)
	}
}

// checkOffline loads page again in a Chromium with no network at all (a network namespace of its
// own, `unshare --net`: no interface but a down loopback) and wants the same rendered DOM as the
// trapped load's. It needs root for the namespace; without it the check is skipped, except under
// CI (which runs as root).
func checkOffline(t *testing.T, chromium, page string, trapped *html.Node) {
	t.Helper()
	unshare, err := exec.LookPath("unshare")
	if err != nil || os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("the offline check needs root and unshare (util-linux): euid %d, unshare: %v", os.Geteuid(), err)
		}
		t.Logf("offline check skipped: needs root and unshare (euid %d, %v)", os.Geteuid(), err)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(unshare, "--net", chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--dump-dom", "file://"+page)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("chromium without a network: %v\n%s", err, errb.String())
		}
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("chromium without a network did not finish")
	}
	offline, err := html.Parse(&out)
	if err != nil {
		t.Fatal(err)
	}
	var a, b bytes.Buffer
	if err := html.Render(&a, trapped); err != nil {
		t.Fatal(err)
	}
	if err := html.Render(&b, offline); err != nil {
		t.Fatal(err)
	}
	if a.Len() < 1000 || !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Errorf("%s: the page rendered without a network (%d bytes of DOM) differs from the page rendered with it trapped (%d bytes)",
			filepath.Base(page), b.Len(), a.Len())
	}
}

// renderedSVGText is the text of the charts (legends are SVG text).
func renderedSVGText(doc *html.Node) string {
	var b strings.Builder
	walkDOM(doc, func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "text" && n.FirstChild != nil {
			b.WriteString(n.FirstChild.Data + "\n")
		}
	})
	return b.String()
}
