package nvml_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/hostclient"
)

// The live tests drive the real plugin binary against testdata/fakenvml/fakenvml.c, compiled
// here into a simulated libnvidia-ml.so.1 that plays a scripted power trace.

var (
	tmpRoot string

	fakeOnce sync.Once
	fakeLib  string
	fakeErr  error

	binOnce sync.Once
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lem-nvml-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		os.Exit(2)
	}
	tmpRoot = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// fakeLibrary compiles the simulated NVML library once per test binary.
func fakeLibrary(t testing.TB) string {
	t.Helper()
	fakeOnce.Do(func() {
		cc, err := exec.LookPath("gcc")
		if err != nil {
			fakeErr = fmt.Errorf("skip: no gcc to build the simulated NVML library: %w", err)
			return
		}
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/NVIDIA/go-nvml").Output()
		if err != nil {
			fakeErr = fmt.Errorf("locate go-nvml's nvml.h: %w", err)
			return
		}
		inc := filepath.Join(strings.TrimSpace(string(out)), "pkg", "nvml")
		dir := filepath.Join(tmpRoot, "fakenvml")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			fakeErr = err
			return
		}
		lib := filepath.Join(dir, "libnvidia-ml.so.1")
		cmd := exec.Command(cc, "-shared", "-fPIC", "-O2", "-Wall", "-Wno-deprecated-declarations", "-Wno-format-truncation",
			"-I", inc, "-o", lib, filepath.Join("testdata", "fakenvml", "fakenvml.c"), "-lm")
		if b, err := cmd.CombinedOutput(); err != nil {
			fakeErr = fmt.Errorf("build simulated NVML: %v\n%s", err, b)
			return
		}
		fakeLib = lib
	})
	if fakeErr != nil {
		if strings.HasPrefix(fakeErr.Error(), "skip:") {
			t.Skip(fakeErr)
		}
		t.Fatal(fakeErr)
	}
	return fakeLib
}

// pluginBinary returns $LEM_BIN/plugins/lem-plugin-nvml when LEM_BIN is set, else builds the
// plugin once per test binary.
func pluginBinary(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("LEM_BIN"); bin != "" {
		p := filepath.Join(bin, "plugins", "lem-plugin-nvml")
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("LEM_BIN is set but %v", err)
		}
		return p
	}
	binOnce.Do(func() {
		p := filepath.Join(tmpRoot, "lem-plugin-nvml")
		cmd := exec.Command("go", "build", "-o", p, "./cmd/lem-plugin-nvml")
		cmd.Env = append(os.Environ(), "CGO_CFLAGS=-Wno-deprecated-declarations")
		if b, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("build plugin: %v\n%s", err, b)
			return
		}
		binPath = p
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// live is one plugin process on the simulated library.
type live struct {
	t      testing.TB
	c      *hostclient.Client
	script string
	log    string
}

// startLive writes script, starts the plugin with the simulated library and configures it with
// cfg (library_path is added unless cfg sets it or noLibrary is true).
func startLive(t testing.TB, script string, cfg map[string]any, env ...string) *live {
	t.Helper()
	lib := fakeLibrary(t)
	bin := pluginBinary(t)
	dir := t.TempDir()
	sp := filepath.Join(dir, "script.txt")
	lp := filepath.Join(dir, "fake.log")
	if err := os.WriteFile(sp, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	env = append([]string{"LEM_FAKE_NVML_SCRIPT=" + sp, "LEM_FAKE_NVML_LOG=" + lp}, env...)
	c, err := hostclient.Open(ctx, bin, hostclient.WithEnv(env...), hostclient.WithStartTimeout(30*time.Second))
	if err != nil {
		t.Fatalf("start plugin: %v", err)
	}
	t.Cleanup(c.Close)
	if cfg == nil {
		cfg = map[string]any{}
	}
	if _, ok := cfg["library_path"]; !ok {
		cfg["library_path"] = lib
	}
	if cfg["library_path"] == "" {
		delete(cfg, "library_path")
	}
	cerrs, err := c.Configure(ctx, cfg)
	if err != nil || len(cerrs) > 0 {
		t.Fatalf("configure %v: %v %v", cfg, cerrs, err)
	}
	return &live{t: t, c: c, script: sp, log: lp}
}

// t0 returns the simulated library's time origin (CLOCK_MONOTONIC ns of its first nvmlInit).
func (l *live) t0() int64 {
	l.t.Helper()
	for _, line := range l.logLines() {
		if v, ok := strings.CutPrefix(line, "t0 "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				l.t.Fatalf("log line %q: %v", line, err)
			}
			return n
		}
	}
	l.t.Fatalf("the simulated library logged no t0")
	return 0
}

func (l *live) logLines() []string {
	b, err := os.ReadFile(l.log)
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// measure runs one session of d at interval and returns its measurement.
func (l *live) measure(interval, d time.Duration) *sdk.Measurement {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d+60*time.Second)
	defer cancel()
	m := l.c.Meter()
	s, err := m.Start(ctx, sdk.StartRequest{Interval: interval, Label: "live"})
	if err != nil {
		l.t.Fatalf("Start: %v", err)
	}
	time.Sleep(d)
	meas, err := m.Stop(ctx, s.ID)
	if err != nil {
		l.t.Fatalf("Stop: %v", err)
	}
	return meas
}

// trace is the power plateaus of one GPU of a script.
type trace struct {
	lens, watts []float64
}

// parseTrace reads the "seg I SECONDS WATTS" lines of GPU i.
func parseTrace(t testing.TB, script string, i int) trace {
	var tr trace
	sc := bufio.NewScanner(strings.NewReader(script))
	for sc.Scan() {
		f := strings.Fields(strings.SplitN(sc.Text(), "#", 2)[0])
		if len(f) != 4 || f[0] != "seg" || f[1] != strconv.Itoa(i) {
			continue
		}
		l, err1 := strconv.ParseFloat(f[2], 64)
		w, err2 := strconv.ParseFloat(f[3], 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("bad seg line %q", sc.Text())
		}
		tr.lens = append(tr.lens, l)
		tr.watts = append(tr.watts, w)
	}
	return tr
}

// power returns the scripted power at script time s (seconds since t0).
func (tr trace) power(s float64) float64 {
	edge := 0.0
	for k, l := range tr.lens {
		edge += l
		if s < edge {
			return tr.watts[k]
		}
	}
	return tr.watts[len(tr.watts)-1]
}

// energy returns the true energy (J) from script time 0 to s, the way the C library computes it.
func (tr trace) energy(s float64) float64 {
	if s <= 0 {
		return tr.watts[0] * s
	}
	e, start := 0.0, 0.0
	for k, l := range tr.lens {
		end := start + l
		if k == len(tr.lens)-1 || s < end {
			return e + tr.watts[k]*(s-start)
		}
		e += tr.watts[k] * l
		start = end
	}
	return e
}

// truth returns the true energy between two CLOCK_MONOTONIC instants.
func (tr trace) truth(t0, a, b int64) float64 {
	return tr.energy(float64(b-t0)/1e9) - tr.energy(float64(a-t0)/1e9)
}
