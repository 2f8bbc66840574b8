package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// servedModel is the experiment `lemctl serve` runs in these tests.
const servedModel = `name = "serve-tiny"
[model]
plugin = "onnx"
ref = "MODEL"
[engine]
plugin = "onnx"
[launch]
devices = "cpu"
`

// server is a running `lemctl serve`.
type server struct {
	cmd    *exec.Cmd
	url    string
	model  string
	stderr string // its stderr file
	done   chan int
}

// startServe starts `lemctl serve` of ref on a free port and waits for its startup line.
// cache is the model cache (XDG_CACHE_HOME; "" for a new one).
func startServe(t testing.TB, plugins, ref, cache string, extra ...string) *server {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "serve.toml")
	if err := os.WriteFile(cfg, []byte(strings.Replace(servedModel, "MODEL", ref, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &server{model: ref, stderr: filepath.Join(dir, "stderr"), done: make(chan int, 1)}
	errf, err := os.Create(s.stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	args := append([]string{"serve", cfg, "--plugin-dir", plugins, "--addr", "127.0.0.1:0"}, extra...)
	s.cmd = exec.Command(lemctlBin, args...)
	s.cmd.Stderr, s.cmd.Stdout = errf, errf
	// A test binary killed by its timeout takes the server with it.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if cache == "" {
		cache = t.TempDir()
	}
	s.cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+cache)
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := s.cmd.Wait()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
		}
		s.done <- code
	}()
	t.Cleanup(func() { _ = s.cmd.Process.Kill() })
	line := regexp.MustCompile(`listening on (http://\S+) model=` + regexp.QuoteMeta(ref) + ` engine=onnx batching=(\S+)`)
	deadline := time.Now().Add(2 * time.Minute) // a hang guard: the model is generated on first use
	for {
		b, _ := os.ReadFile(s.stderr)
		if m := line.FindSubmatch(b); m != nil {
			s.url = string(m[1])
			if string(m[2]) != "continuous" {
				t.Fatalf("lemctl serve batches %s, want continuous with the onnx engine:\n%s", m[2], b)
			}
			return s
		}
		select {
		case code := <-s.done:
			t.Fatalf("lemctl serve exited %d before serving:\n%s", code, b)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("lemctl serve printed no startup line:\n%s", b)
		}
	}
}

// complete streams one greedy completion and returns its generated ids (from the chunks) and
// the usage's completion tokens.
// first, when not nil, is called at the first token.
func (s *server) complete(prompt string, maxTokens int, first func()) ([]int32, int, error) {
	body := fmt.Sprintf(`{"model":"synthetic:gpt2-tiny","prompt":%q,"max_tokens":%d,"temperature":0,"stream":true,"stream_options":{"include_usage":true},"return_token_ids":true}`, prompt, maxTokens)
	resp, err := http.Post(s.url+"/v1/completions", "application/json", strings.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return nil, 0, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	var ids []int32
	usage := -1
	sc := bufio.NewScanner(resp.Body)
	sawDone := false
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			sawDone = true
			continue
		}
		var c struct {
			Choices []struct {
				TokenIDs []int32 `json:"token_ids"`
			} `json:"choices"`
			Usage *struct {
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			return nil, 0, fmt.Errorf("chunk %q: %v", data, err)
		}
		for _, ch := range c.Choices {
			if len(ids) == 0 && len(ch.TokenIDs) > 0 && first != nil {
				first()
			}
			if len(ch.TokenIDs) > 1 {
				return nil, 0, fmt.Errorf("a chunk holds %d tokens, want one per chunk", len(ch.TokenIDs))
			}
			ids = append(ids, ch.TokenIDs...)
		}
		if c.Usage != nil {
			usage = c.Usage.CompletionTokens
		}
	}
	if !sawDone {
		return nil, 0, fmt.Errorf("the stream ended without [DONE]")
	}
	return ids, usage, sc.Err()
}

// batchMean returns lemctl_serve_batch_size's sum and count.
func (s *server) batchSize(t testing.TB) (sum float64, count uint64) {
	t.Helper()
	resp, err := http.Get(s.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	h := fams["lemctl_serve_batch_size"].GetMetric()[0].GetHistogram()
	return h.GetSampleSum(), h.GetSampleCount()
}

// generateIDs is `lemctl generate`'s greedy ids for prompt.
func generateIDs(t *testing.T, plugins, prompt string, n int) []int32 {
	t.Helper()
	r := lemctl(t, nil, "generate", "--plugin-dir", plugins, "--model", "synthetic:gpt2-tiny", "--prompt", prompt, "--max-new-tokens", fmt.Sprint(n), "--output", "json")
	if code := r.wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("lemctl generate exited %d:\n%s", code, r.stderr.String())
	}
	var res struct {
		Requests []struct {
			OutputIDs []int32 `json:"output_ids"`
		} `json:"requests"`
	}
	if err := json.Unmarshal(r.stdout.Bytes(), &res); err != nil || len(res.Requests) != 1 {
		t.Fatalf("lemctl generate --output json: %v\n%s", err, r.stdout.String())
	}
	return res.Requests[0].OutputIDs
}

// TestServeContinuousBatchingOnnx serves synthetic:gpt2-tiny with the onnx engine: concurrent
// streamed greedy requests give the ids of the same requests sent alone and of `lemctl
// generate`, the mean batch size under concurrency is above 1, and SIGTERM lets a running
// request finish, exits 143 and leaves no plugin process.
func TestServeContinuousBatchingOnnx(t *testing.T) {
	plugins := productPlugins(t, "onnx")
	const maxTokens = 24
	prompts := []string{"Hello, my name is", "The capital of France", "Once upon a time there was", "1 2 3 4"}
	s := startServe(t, plugins, "synthetic:gpt2-tiny", "", "--max-batch", "8")
	var pluginPIDs []int
	for _, p := range processes() {
		if p.ppid == s.cmd.Process.Pid && strings.HasPrefix(filepath.Base(p.exe), "lem-plugin-") {
			pluginPIDs = append(pluginPIDs, p.pid)
		}
	}
	if len(pluginPIDs) == 0 {
		t.Fatal("lemctl serve runs no plugin process")
	}

	alone := map[string][]int32{}
	for _, p := range prompts {
		ids, usage, err := s.complete(p, maxTokens, nil)
		if err != nil {
			t.Fatal(err)
		}
		if usage != len(ids) || len(ids) == 0 {
			t.Fatalf("%q: usage.completion_tokens %d for %d streamed ids", p, usage, len(ids))
		}
		alone[p] = ids
		if want := generateIDs(t, plugins, p, maxTokens); fmt.Sprint(want) != fmt.Sprint(ids) {
			t.Errorf("%q: served ids %v, lemctl generate %v", p, ids, want)
		}
	}

	sum0, count0 := s.batchSize(t)
	const concurrency = 8
	got := make([][]int32, 2*concurrency)
	errs := make([]error, len(got))
	var wg sync.WaitGroup
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], _, errs[i] = s.complete(prompts[i%len(prompts)], maxTokens, nil)
		}()
		if i == concurrency-1 {
			wg.Wait() // two waves of 8
		}
	}
	wg.Wait()
	for i, ids := range got {
		p := prompts[i%len(prompts)]
		if errs[i] != nil {
			t.Errorf("concurrent request %d: %v", i, errs[i])
		} else if fmt.Sprint(ids) != fmt.Sprint(alone[p]) {
			t.Errorf("concurrent request %d (%q): ids %v, alone %v", i, p, ids, alone[p])
		}
	}
	sum1, count1 := s.batchSize(t)
	if count1 == count0 {
		t.Fatal("no forward pass recorded under concurrency")
	}
	mean := (sum1 - sum0) / float64(count1-count0)
	t.Logf("mean batch size under concurrency %d: %.2f over %d passes", concurrency, mean, count1-count0)
	if !(mean > 1) {
		t.Errorf("mean batch size %.2f under %d concurrent requests: continuous batching did not batch", mean, concurrency)
	}

	// SIGTERM while a request runs: it finishes, then lemctl exits 143.
	type answer struct {
		ids []int32
		err error
	}
	running := make(chan answer, 1)
	started := make(chan struct{})
	go func() {
		ids, _, err := s.complete(prompts[0], 100, func() { close(started) })
		running <- answer{ids, err}
	}()
	select {
	case <-started:
	case a := <-running:
		t.Fatalf("the request ended before its first token: %v", a.err)
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	a := <-running
	if a.err != nil || len(a.ids) == 0 {
		t.Errorf("the request running at SIGTERM: %v (%d ids)", a.err, len(a.ids))
	}
	select {
	case code := <-s.done:
		b, _ := os.ReadFile(s.stderr)
		if code != 143 {
			t.Errorf("exit code %d after SIGTERM, want 143:\n%s", code, b)
		}
	case <-time.After(time.Minute):
		t.Fatal("lemctl serve did not exit within a minute of SIGTERM")
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		var left []proc
		for _, p := range processes() {
			for _, pid := range pluginPIDs {
				if p.pid == pid {
					left = append(left, p)
				}
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin processes left after lemctl serve exited: %v", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestServeBadConfigExits2 names the key of a bad experiment file.
func TestServeBadConfigExits2(t *testing.T) {
	plugins := productPlugins(t, "onnx")
	cfg := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(cfg, []byte(strings.Replace(strings.Replace(servedModel, "MODEL", "synthetic:gpt2-tiny", 1), `plugin = "onnx"
[launch]`, `plugin = "onnx"
bogus_key = 1
[launch]`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	r := lemctl(t, nil, "serve", cfg, "--plugin-dir", plugins, "--addr", "127.0.0.1:0")
	if code := r.wait(t, 2*time.Minute); code != 2 || !strings.Contains(r.stderr.String(), "bogus_key") {
		t.Errorf("exit %d, want 2 naming engine.bogus_key:\n%s", code, r.stderr.String())
	}
}
