package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lemctl/lemctl/host/results"
)

var (
	lemctlBin string // the lemctl binary under test
	pluginDir string // a plugin directory with the example plugins and fsstore
	repoRoot  string
)

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	tmp, err := os.MkdirTemp("", "lemctl-e2e-")
	if err != nil {
		panic(err)
	}
	code := 1
	if err := setup(tmp); err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(tmp)
	os.Exit(code)
}

// setup finds (under $LEM_BIN, as `make test` sets it) or builds the binaries, and assembles a
// plugin directory of the example plugins and fsstore.
func setup(tmp string) error {
	pluginDir = filepath.Join(tmp, "plugins")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		return err
	}
	bin := os.Getenv("LEM_BIN")
	want := map[string]string{ // binary name → (module dir, package) to build when LEM_BIN is unset
		"lem-plugin-example-engine": "sdk:./examples/engine",
		"lem-plugin-example-loader": "sdk:./examples/loader",
		"lem-plugin-example-meter":  "sdk:./examples/meter",
		"lem-plugin-fsstore":        "plugins/fsstore:./cmd/lem-plugin-fsstore",
	}
	if bin != "" {
		lemctlBin = filepath.Join(bin, "lemctl")
		for name := range want {
			src := filepath.Join(bin, "examples", name)
			if _, err := os.Stat(src); err != nil {
				src = filepath.Join(bin, "plugins", name)
			}
			if err := copyFile(src, filepath.Join(pluginDir, name)); err != nil {
				return err
			}
		}
		return nil
	}
	lemctlBin = filepath.Join(tmp, "lemctl")
	if err := gobuild(repoRoot, "./cmd/lemctl", lemctlBin); err != nil {
		return err
	}
	for name, where := range want {
		mod, pkg, _ := strings.Cut(where, ":")
		if err := gobuild(filepath.Join(repoRoot, mod), pkg, filepath.Join(pluginDir, name)); err != nil {
			return err
		}
	}
	return nil
}

// gobuild builds pkg of the module in dir, without cgo unless env says otherwise.
func gobuild(dir, pkg, out string, env ...string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "CGO_ENABLED=0"), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// installProductPlugin puts lem-plugin-<name> into a new plugin directory and returns it: the
// binary from $LEM_BIN/plugins when set, else built from plugins/<name>.
func installProductPlugin(t *testing.T, name string, env ...string) (pluginDir string) {
	t.Helper()
	pluginDir = filepath.Join(t.TempDir(), "plugins")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := "lem-plugin-" + name
	var err error
	if dir := os.Getenv("LEM_BIN"); dir != "" {
		err = copyFile(filepath.Join(dir, "plugins", bin), filepath.Join(pluginDir, bin))
	} else {
		err = gobuild(filepath.Join(repoRoot, "plugins", name), "./cmd/"+bin, filepath.Join(pluginDir, bin), env...)
	}
	if err != nil {
		t.Fatal(err)
	}
	return pluginDir
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// run is one lemctl invocation.
type run struct {
	stdout, stderr bytes.Buffer
	code           int
	cmd            *exec.Cmd
}

// lemctl starts lemctl with args in the background, with its own cache directory and the
// extra environment.
func lemctl(t *testing.T, env []string, args ...string) *run {
	t.Helper()
	r := &run{}
	r.cmd = exec.Command(lemctlBin, args...)
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	r.cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+t.TempDir())
	r.cmd.Env = append(r.cmd.Env, env...)
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return r
}

// wait waits for the run and returns its exit code.
func (r *run) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					r.code = 128 + int(ws.Signal())
				} else {
					r.code = ee.ExitCode()
				}
			} else {
				t.Fatal(err)
			}
		}
	case <-time.After(timeout):
		_ = r.cmd.Process.Kill()
		t.Fatalf("lemctl %v did not finish within %s\nstderr:\n%s", r.cmd.Args[1:], timeout, r.stderr.String())
	}
	return r.code
}

// runExperiment writes config to a file and runs it to the end.
func runExperiment(t *testing.T, config string, env []string, extra ...string) (*run, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "experiment.toml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	resultsDir := filepath.Join(dir, "results")
	args := append([]string{"run", cfg, "--plugin-dir", pluginDir, "--results-dir", resultsDir, "--progress", "quiet"}, extra...)
	r := lemctl(t, env, args...)
	r.wait(t, 3*time.Minute)
	return r, resultsDir
}

// experimentID returns the only experiment in a results directory.
func experimentID(t *testing.T, resultsDir string) string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(resultsDir, "runs"))
	if err != nil || len(entries) != 1 {
		t.Fatalf("want one experiment under %s/runs: %v %v", resultsDir, entries, err)
	}
	return entries[0].Name()
}

func readRaw(t *testing.T, resultsDir, exp string, rank int) *results.Raw {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(resultsDir, "raw", exp, fmt.Sprintf("process_%d.json", rank)))
	if err != nil {
		t.Fatal(err)
	}
	r, err := results.DecodeRaw(b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func readAggregated(t *testing.T, resultsDir, exp string) *results.Aggregated {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(resultsDir, "aggregated", exp+".json"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := results.DecodeAggregated(b)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func readManifest(t *testing.T, resultsDir, exp string) *results.Manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(resultsDir, "runs", exp, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m results.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

// pluginProcesses lists the live processes running a binary from pluginDir.
func pluginProcesses() []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, p := range procs {
		target, err := os.Readlink(p)
		if err == nil && strings.HasPrefix(target, pluginDir) {
			out = append(out, fmt.Sprintf("%s (%s)", filepath.Base(filepath.Dir(p)), target))
		}
	}
	return out
}

// waitFile waits until path exists and returns its content.
func waitFile(ctx context.Context, path string) (string, error) {
	for {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return string(b), nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// checkTwoRankPartition checks what every two-worker run of 16 prompts must show, whatever
// launched it: each rank measured 8 requests, the ranks are 0 and 1, every prompt was measured
// exactly once across them, and the aggregate is complete and sums the raws. It returns the two
// raw results, in rank order.
func checkTwoRankPartition(t *testing.T, res, exp string, agg *results.Aggregated) []*results.Raw {
	t.Helper()
	seen := map[string]int{}
	var requests, in, out int64
	raws := make([]*results.Raw, 2)
	for rank := range raws {
		raw := readRaw(t, res, exp, rank)
		raws[rank] = raw
		if raw.Rank != rank {
			t.Errorf("raw result %d carries rank %d", rank, raw.Rank)
		}
		requests += raw.Workload.Requests
		in += raw.Workload.InputTokens
		out += raw.Workload.OutputTokens
		for _, q := range raw.Requests {
			seen[q.ID]++
		}
		if raw.Workload.Requests != 8 {
			t.Errorf("rank %d measured %d requests, want 8 (half of 16)", rank, raw.Workload.Requests)
		}
	}
	if len(seen) != 16 {
		t.Errorf("%d distinct prompts across ranks, want 16: %v", len(seen), seen)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("prompt %s measured %d times", id, n)
		}
	}
	if agg.Workload.Requests != requests || agg.Workload.InputTokens != in || agg.Workload.OutputTokens != out {
		t.Errorf("aggregate %d requests, tokens %d/%d; sum of raws %d, %d/%d", agg.Workload.Requests, agg.Workload.InputTokens, agg.Workload.OutputTokens, requests, in, out)
	}
	if agg.Partial || len(agg.Ranks) != 2 {
		t.Errorf("aggregate partial=%v ranks=%v", agg.Partial, agg.Ranks)
	}
	return raws
}

// quickUnmetered ends an experiment file of a test about tokens, loads or outputs rather than
// energy: no idle baseline, one fixed warm-up batch, no meters.
const quickUnmetered = `
[lifecycle]
baseline_s = 0

[lifecycle.warmup]
mode = "fixed"
batches = 1

[energy]
meters = []
`
