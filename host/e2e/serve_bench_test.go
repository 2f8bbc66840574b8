package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkServeVsGenerate compares `lemctl serve`'s sustained decode rate at concurrency 8 with
// `lemctl generate --batch 8` on the same model (docs/performance.md, "lemctl serve"):
//
//	make build && LEM_BIN=$PWD/bin go test ./host/e2e -run '^$' -bench ServeVsGenerate -benchtime 5x -timeout 30m
//
// LEM_BENCH_MODEL picks the model (default synthetic:gpt2-124m), LEM_BENCH_TOKENS the tokens per
// request (default 64). Each iteration runs, side by side and in alternating order, one
// `lemctl generate --batch 8 --ignore-eos` (its decode_tokens_per_s, timed in the engine) and one
// serve phase: 8 clients each send 3 streamed greedy requests back to back (ignore_eos); the
// serve rate is the tokens the clients received between the moment all 8 had a first token and
// the moment the first client finished its last request (8 requests in flight throughout),
// over that interval, on the clients' clock. It reports both rates and the median ratio.
func BenchmarkServeVsGenerate(b *testing.B) {
	bin := os.Getenv("LEM_BIN")
	plugins := filepath.Join(bin, "plugins")
	if _, err := os.Stat(filepath.Join(plugins, "lem-plugin-onnx")); bin == "" || err != nil {
		b.Skip("the onnx plugin is not built: run `make build` and set LEM_BIN")
	}
	ref := envOr("LEM_BENCH_MODEL", "synthetic:gpt2-124m")
	tokens := 64
	if v := os.Getenv("LEM_BENCH_TOKENS"); v != "" {
		if _, err := fmt.Sscan(v, &tokens); err != nil || tokens < 2 {
			b.Fatalf("LEM_BENCH_TOKENS=%q: want a number of tokens ≥ 2", v)
		}
	}
	// The user's cache: a synthetic model is generated once, not per benchmark run.
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = b.TempDir()
	}
	s := startServe(b, plugins, ref, cache, "--max-batch", "8")
	generateRate(b, plugins, ref, cache, tokens) // warm both (and generate the model once)
	serveRate(b, s, tokens)
	var ratios, serves, gens []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var sr, gr float64
		if i%2 == 0 {
			sr, gr = serveRate(b, s, tokens), generateRate(b, plugins, ref, cache, tokens)
		} else {
			gr, sr = generateRate(b, plugins, ref, cache, tokens), serveRate(b, s, tokens)
		}
		serves, gens, ratios = append(serves, sr), append(gens, gr), append(ratios, sr/gr)
	}
	b.StopTimer()
	b.Logf("model %s, %d tokens per request: serve %.1f tok/s, generate %.1f tok/s, ratio %.3f per iteration", ref, tokens, serves, gens, ratios)
	b.ReportMetric(median(serves), "serve-decode-tok/s")
	b.ReportMetric(median(gens), "generate-decode-tok/s")
	b.ReportMetric(median(ratios), "ratio")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func median(v []float64) float64 {
	s := append([]float64{}, v...)
	sort.Float64s(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// generateRate runs `lemctl generate --batch 8` and returns its decode tokens/s.
func generateRate(b *testing.B, plugins, ref, cache string, tokens int) float64 {
	cmd := exec.Command(lemctlBin, "generate", "--plugin-dir", plugins, "--model", ref, "--batch", "8",
		"--max-new-tokens", fmt.Sprint(tokens), "--ignore-eos", "--output", "json")
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+cache)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		b.Fatalf("lemctl generate: %v\n%s", err, errb.String())
	}
	var res struct {
		Batch struct {
			DecodeTokensPerS *float64 `json:"decode_tokens_per_s"`
		} `json:"batch"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || res.Batch.DecodeTokensPerS == nil {
		b.Fatalf("lemctl generate --output json: %v\n%s", err, out.String())
	}
	return *res.Batch.DecodeTokensPerS
}

// serveRate runs 8 closed-loop clients of 3 requests each and returns the tokens/s received
// while all 8 were in flight.
func serveRate(b *testing.B, s *server, tokens int) float64 {
	const clients, perClient = 8, 3
	var mu sync.Mutex
	var arrivals []time.Time
	var firsts, lasts []time.Time
	var wg sync.WaitGroup
	body := fmt.Sprintf(`{"model":%q,"prompt":"Hello, my name is","max_tokens":%d,"temperature":0,"ignore_eos":true,"stream":true}`, s.model, tokens)
	errs := make(chan error, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var first time.Time
			for r := 0; r < perClient; r++ {
				resp, err := http.Post(s.url+"/v1/completions", "application/json", strings.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				sc := bufio.NewScanner(resp.Body)
				for sc.Scan() {
					line := sc.Text()
					if !strings.HasPrefix(line, "data: {") || !strings.Contains(line, `"text"`) || strings.Contains(line, `"finish_reason":"`) {
						continue
					}
					now := time.Now()
					if first.IsZero() {
						first = now
					}
					mu.Lock()
					arrivals = append(arrivals, now)
					mu.Unlock()
				}
				resp.Body.Close()
			}
			mu.Lock()
			firsts, lasts = append(firsts, first), append(lasts, time.Now())
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	t0, t1 := firsts[0], lasts[0]
	for _, f := range firsts {
		if f.After(t0) {
			t0 = f
		}
	}
	for _, l := range lasts {
		if l.Before(t1) {
			t1 = l
		}
	}
	n := 0
	for _, a := range arrivals {
		if !a.Before(t0) && !a.After(t1) {
			n++
		}
	}
	if !t1.After(t0) || n == 0 {
		b.Fatalf("no interval with all %d clients in flight", clients)
	}
	return float64(n) / t1.Sub(t0).Seconds()
}
