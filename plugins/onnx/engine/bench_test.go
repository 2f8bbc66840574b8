package engine_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/lemctl/lemctl/plugins/onnx/engine"
	"github.com/lemctl/lemctl/plugins/onnx/internal/testenv"
	"github.com/lemctl/lemctl/plugins/onnx/loader"
	"github.com/lemctl/lemctl/plugins/onnx/model"
	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/clock"
	"github.com/lemctl/lemctl/sdk/hostclient"
)

// The decode benchmark: synthetic:gpt2-124m in float32, int8 and int4 (-q8, -q4), a 16-token
// prompt, 32 new tokens (EOS ignored), greedy, at batch 1 and 8; the same work through the
// plugin process and directly on onnxruntime_go in this process, alternating within every
// iteration. $LEM_BENCH_MODEL replaces the models (one reference, e.g. synthetic:gpt2-tiny,
// where per-step overheads show up that a large model hides).
func benchModels() []string {
	if m := os.Getenv("LEM_BENCH_MODEL"); m != "" {
		return []string{m}
	}
	return []string{"synthetic:gpt2-124m", "synthetic:gpt2-124m-q8", "synthetic:gpt2-124m-q4"}
}

const (
	benchPrompt = 16
	benchNew    = 32
)

// benchEnv is set up once per model and benchmark binary: the plugin process with the model
// loaded, the same engine in this process, and the direct session.
type benchEnv struct {
	client        *hostclient.Client
	inproc        *engine.Engine // the same engine in this process: the plugin minus process and RPC
	direct        *directLoop
	bytesPerToken float64 // weight bytes one decode step reads (the artifact's bytes_per_token)
	threads       int
}

var (
	benchMu   sync.Mutex
	benchEnvs = map[string]*benchEnv{}
)

func setupBench(b *testing.B, ref string) *benchEnv {
	b.Helper()
	benchMu.Lock()
	defer benchMu.Unlock()
	if env := benchEnvs[ref]; env != nil {
		return env
	}
	v := testenv.Vocab(b)
	testenv.ORT(b)
	lib, _ := model.ORTLibrary()
	cache, err := loader.DefaultCacheDir() // gpt2-124m is ~500 MB: generate it once per machine
	if err != nil {
		b.Fatal(err)
	}
	threads := runtime.GOMAXPROCS(0)
	cfg := map[string]any{"cache_dir": cache, "vocab_dir": filepath.Dir(v.EncoderJSON), "library_path": lib, "threads": threads}
	dir, err := os.MkdirTemp("", "onnx-engine-bench-")
	if err != nil {
		b.Fatal(err)
	}
	bin := pluginBinary(b, dir)
	ctx := context.Background()
	c, err := hostclient.Open(ctx, bin)
	if err != nil {
		b.Fatal(err)
	}
	if errs, err := c.Configure(ctx, cfg); err != nil || len(errs) > 0 {
		b.Fatalf("configure: %v %v", errs, err)
	}
	a, err := c.Loader().Resolve(ctx, ref)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.Engine().Load(ctx, sdk.LoadRequest{Artifact: *a, Device: sdk.Device{Kind: "cpu", Index: -1}}); err != nil {
		b.Fatal(err)
	}
	inproc := engine.New()
	s := engine.DefaultSettings()
	s.LibraryPath, s.Threads = lib, threads
	inproc.SetSettings(s)
	if _, err := inproc.Load(ctx, sdk.LoadRequest{Artifact: *a, Device: sdk.Device{Kind: "cpu", Index: -1}}); err != nil {
		b.Fatal(err)
	}
	d, err := newDirectLoop(a, threads)
	if err != nil {
		b.Fatal(err)
	}
	bpt, err := strconv.ParseFloat(a.Metadata["bytes_per_token"], 64)
	if err != nil || bpt <= 0 {
		b.Fatalf("%s: artifact reports no bytes_per_token (%q)", ref, a.Metadata["bytes_per_token"])
	}
	env := &benchEnv{client: c, inproc: inproc, direct: d, bytesPerToken: bpt, threads: threads}
	benchEnvs[ref] = env
	return env
}

var inprocEnvs = map[string]*benchEnv{}

// inprocBench is the in-process engine alone with ref loaded (no plugin process, no direct
// session): what BenchmarkPrecision compares.
func inprocBench(b *testing.B, ref string) *benchEnv {
	b.Helper()
	benchMu.Lock()
	defer benchMu.Unlock()
	if env := inprocEnvs[ref]; env != nil {
		return env
	}
	v := testenv.Vocab(b)
	testenv.ORT(b)
	lib, _ := model.ORTLibrary()
	cache, err := loader.DefaultCacheDir()
	if err != nil {
		b.Fatal(err)
	}
	l := loader.New()
	l.SetSettings(loader.Settings{CacheDir: cache, VocabDir: filepath.Dir(v.EncoderJSON)})
	a, err := l.Resolve(context.Background(), ref)
	if err != nil {
		b.Fatal(err)
	}
	e := engine.New()
	s := engine.DefaultSettings()
	s.LibraryPath, s.Threads = lib, runtime.GOMAXPROCS(0)
	e.SetSettings(s)
	if _, err := e.Load(context.Background(), sdk.LoadRequest{Artifact: *a, Device: sdk.Device{Kind: "cpu", Index: -1}}); err != nil {
		b.Fatal(err)
	}
	env := &benchEnv{inproc: e, threads: s.Threads}
	inprocEnvs[ref] = env
	return env
}

// benchRequest is the benchmark's batch: prompt i is 1000+37i, +11 per token.
func benchRequest(batch int) (sdk.GenerateRequest, [][]int64) {
	prompts := make([]sdk.Prompt, batch)
	ids := make([][]int64, batch)
	for i := range prompts {
		p := make([]int32, benchPrompt)
		ids[i] = make([]int64, benchPrompt)
		for j := range p {
			p[j] = int32(1000 + 37*i + 11*j)
			ids[i][j] = int64(p[j])
		}
		prompts[i] = sdk.Prompt{ID: itoa(i), IDs: p}
	}
	return sdk.GenerateRequest{Prompts: prompts, Decoding: sdk.Decoding{MaxNewTokens: benchNew, Greedy: true, IgnoreEOS: true}}, ids
}

// BenchmarkDecode reports, per model and batch, per iteration (one batch through each path, in
// all six orders in turn), decode tokens/s through the plugin and direct, their ratio, the
// host-observed end-to-end ratio, the in-process engine's ratio to direct (which splits an
// overhead between the engine's code and the process boundary), and the memory-bandwidth
// roofline: the weight bytes one decode step reads (bytes/token of the artifact) ÷ the read
// bandwidth measured inside the same iteration, next to the decode it judges (a machine shared
// with other work changes its bandwidth from one second to the next).
//
// ratio and inproc-ratio are medians of the per-iteration ratios, ratio-min the smallest.
//
//	go test -run '^$' -bench Decode -benchtime 6x -count 3 ./engine/ | tee new.txt; benchstat new.txt
func BenchmarkDecode(b *testing.B) {
	for _, ref := range benchModels() {
		name := strings.TrimPrefix(ref, "synthetic:")
		for _, batch := range []int{1, 8} {
			b.Run("model="+name+"/batch="+itoa(batch), func(b *testing.B) {
				env := setupBench(b, ref)
				req, ids := benchRequest(batch)
				// One untimed run of each warms them; the in-process one also counts the distinct
				// greedy ids of the first request (a sound benchmark model decodes varied ids,
				// not one token repeated).
				env.viaPlugin(b, env.client.Engine(), req)
				distinct := distinctIDs(b, env.inproc, req)
				env.direct.run(b, ids, benchNew)
				var decode, e2e [3]float64 // plugin, in-process engine, direct
				var bw float64
				var ratios, inprocRatios []float64
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					// The bandwidth probe first (it evicts the caches, so it must not always
					// precede the same arm), then the three arms in one of their six orders.
					bw += readBandwidth(256<<20, 2)
					var d [3]float64
					for _, arm := range armOrders[i%len(armOrders)] {
						var e float64
						switch arm {
						case 0:
							d[0], e = env.viaPlugin(b, env.client.Engine(), req)
						case 1:
							d[1], e = env.viaPlugin(b, env.inproc, req)
						default:
							d[2], e = env.direct.run(b, ids, benchNew)
						}
						decode[arm], e2e[arm] = decode[arm]+d[arm], e2e[arm]+e
					}
					ratios, inprocRatios = append(ratios, d[0]/d[2]), append(inprocRatios, d[1]/d[2])
				}
				n := float64(b.N)
				plugin, direct := decode[0], decode[2]
				b.ReportMetric(plugin/n, "plugin-tok/s")
				b.ReportMetric(direct/n, "direct-tok/s")
				// Per-iteration ratios compare runs seconds apart; their median resists the
				// load spikes of a shared machine that a ratio of sums takes in whole.
				b.ReportMetric(median(ratios), "ratio")
				b.ReportMetric(slices.Min(ratios), "ratio-min")
				b.ReportMetric(float64(distinct), "distinct-ids")
				b.ReportMetric(e2e[0]/e2e[2], "e2e-ratio")
				b.ReportMetric(median(inprocRatios), "inproc-ratio")
				// A decode step reads the weights once for the whole batch.
				stepFloor := env.bytesPerToken / (bw / n) // seconds per step at the measured bandwidth
				b.ReportMetric(env.bytesPerToken/1e6, "weight-MB/step")
				b.ReportMetric(bw/n/1e9, "read-GB/s")
				b.ReportMetric(stepFloor*1e3, "bytes÷bw-ms")
				b.ReportMetric(plugin/n/(float64(batch)/stepFloor), "of-roofline")
			})
		}
	}
}

// BenchmarkPrecision reports the decode speed of the int8 and int4 presets relative to float32,
// in-process, the three run in turn inside every iteration (rotating which goes first) so that
// each ratio compares runs seconds apart on a shared machine: the median of the per-iteration
// ratios.
//
//	go test -run '^$' -bench Precision -benchtime 5x ./engine/
func BenchmarkPrecision(b *testing.B) {
	refs := []string{"synthetic:gpt2-124m", "synthetic:gpt2-124m-q8", "synthetic:gpt2-124m-q4"}
	for _, batch := range []int{1, 8} {
		b.Run("batch="+itoa(batch), func(b *testing.B) {
			envs := make([]*benchEnv, len(refs))
			req, _ := benchRequest(batch)
			for i, ref := range refs {
				envs[i] = inprocBench(b, ref)
				envs[i].viaPlugin(b, envs[i].inproc, req)
			}
			var q8, q4 []float64
			var tok [3]float64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var d [3]float64
				for k := 0; k < 3; k++ {
					arm := (i + k) % 3
					d[arm], _ = envs[arm].viaPlugin(b, envs[arm].inproc, req)
					tok[arm] += d[arm]
				}
				q8, q4 = append(q8, d[1]/d[0]), append(q4, d[2]/d[0])
			}
			n := float64(b.N)
			b.ReportMetric(tok[0]/n, "fp32-tok/s")
			b.ReportMetric(tok[1]/n, "int8-tok/s")
			b.ReportMetric(tok[2]/n, "int4-tok/s")
			b.ReportMetric(median(q8), "int8/fp32")
			b.ReportMetric(median(q4), "int4/fp32")
		})
	}
}

// armOrders are the six orders of the plugin (0), in-process (1) and direct (2) arms: with a
// multiple of 6 iterations each arm comes first, second and last equally often.
var armOrders = [6][3]int{{0, 1, 2}, {1, 2, 0}, {2, 0, 1}, {0, 2, 1}, {2, 1, 0}, {1, 0, 2}}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkDirectOutputs compares, in the direct loop alone, present tensors written into
// preallocated buffers (what the engine does) with outputs onnxruntime_go allocates and copies
// into Go memory each step (the naive loop): the ratio is what avoiding the per-step copy of the
// cache is worth.
func BenchmarkDirectOutputs(b *testing.B) {
	env := setupBench(b, benchModels()[0])
	for _, batch := range []int{1, 8} {
		b.Run("batch="+itoa(batch), func(b *testing.B) {
			ids := make([][]int64, batch)
			for i := range ids {
				ids[i] = make([]int64, benchPrompt)
				for j := range ids[i] {
					ids[i][j] = int64(1000 + 37*i + 11*j)
				}
			}
			env.direct.runMode(b, ids, benchNew, true)
			var pre, naive float64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, alloc := range []bool{i%2 == 0, i%2 != 0} {
					d, _ := env.direct.runMode(b, ids, benchNew, alloc)
					if alloc {
						naive += d
					} else {
						pre += d
					}
				}
			}
			b.ReportMetric(pre/float64(b.N), "prealloc-tok/s")
			b.ReportMetric(naive/float64(b.N), "ortalloc-tok/s")
			b.ReportMetric(pre/naive, "ratio")
		})
	}
}

// viaPlugin runs req in engine e (the plugin's client, or the in-process engine) and returns its decode tokens/s (engine timing: tokens after
// each request's first over [first token, end]) and end-to-end output tokens/s seen by this
// process (the whole RPC).
func (env *benchEnv) viaPlugin(b *testing.B, e sdk.Engine, req sdk.GenerateRequest) (decode, e2e float64) {
	start := clock.Mono()
	bt, err := e.Generate(context.Background(), req, func(sdk.RequestResult) error { return nil })
	wall := clock.Mono() - start
	if err != nil {
		b.Fatal(err)
	}
	if bt.OutputTokens != len(req.Prompts)*benchNew {
		b.Fatalf("plugin generated %d tokens", bt.OutputTokens)
	}
	return float64(bt.OutputTokens-bt.Requests) / seconds(bt.EndMonoNS-bt.FirstTokenMonoNS), float64(bt.OutputTokens) / seconds(wall)
}

// distinctIDs runs req in e and returns how many distinct ids the first request's output has.
func distinctIDs(b *testing.B, e sdk.Engine, req sdk.GenerateRequest) int {
	seen := map[int32]bool{}
	_, err := e.Generate(context.Background(), req, func(r sdk.RequestResult) error {
		if r.Index == 0 {
			for _, id := range r.OutputIDs {
				seen[id] = true
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return len(seen)
}

func seconds(ns int64) float64 { return float64(ns) / 1e9 }

func itoa(i int) string { return strconv.Itoa(i) }

// directLoop is the reference: the same greedy KV-cache loop written straight against
// onnxruntime_go, with the present tensors written into preallocated buffers that the next step
// reads as the past — the best this process can do without the plugin.
type directLoop struct {
	session                         *ort.DynamicAdvancedSession
	layers, kvHeads, headDim, vocab int
	kv                              [2][][]float32
	logits                          []float32
}

func newDirectLoop(a *sdk.Artifact, threads int) (*directLoop, error) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(threads); err != nil {
		return nil, err
	}
	if err := opts.SetGraphOptimizationLevel(ort.GraphOptimizationLevelEnableAll); err != nil {
		return nil, err
	}
	d := &directLoop{layers: a.KV.Layers, kvHeads: a.KV.KVHeads, headDim: a.KV.HeadDim, vocab: a.VocabSize}
	in := []string{"input_ids", "attention_mask", "position_ids"}
	out := []string{"logits"}
	for i := 0; i < d.layers; i++ {
		in = append(in, model.PastKey(i), model.PastValue(i))
		out = append(out, model.PresentKey(i), model.PresentValue(i))
	}
	d.session, err = ort.NewDynamicAdvancedSession(a.Path, in, out, opts)
	return d, err
}

// run decodes steps tokens greedily after the prompts (all the same length) and returns decode
// tokens/s (after each row's first token) and end-to-end output tokens/s.
func (d *directLoop) run(b *testing.B, prompts [][]int64, steps int) (decode, e2e float64) {
	return d.runMode(b, prompts, steps, false)
}

// runMode is run; with ortAlloc, the outputs are left for onnxruntime_go to allocate (in C,
// then copied into Go memory) and fed back as the next past — the naive loop, for comparison.
func (d *directLoop) runMode(b *testing.B, prompts [][]int64, steps int, ortAlloc bool) (decode, e2e float64) {
	start := clock.Mono()
	batch, plen := len(prompts), len(prompts[0])
	total := plen + steps - 1
	per := batch * d.kvHeads * total * d.headDim
	for s := range d.kv {
		if len(d.kv[s]) != 2*d.layers || len(d.kv[s][0]) < per {
			d.kv[s] = make([][]float32, 2*d.layers)
			for j := range d.kv[s] {
				d.kv[s][j] = make([]float32, per)
			}
		}
	}
	if len(d.logits) < batch*plen*d.vocab {
		d.logits = make([]float32, batch*plen*d.vocab)
	}
	ids := make([]int64, 0, batch*plen)
	pos := make([]int64, 0, batch*plen)
	for _, p := range prompts {
		ids = append(ids, p...)
		for j := range p {
			pos = append(pos, int64(j))
		}
	}
	mask := make([]int64, batch*total)
	for i := range mask {
		mask[i] = 1
	}
	var first int64
	cur, past, s := 0, 0, plen
	var prev []ort.Value // ortAlloc: the previous step's present tensors
	defer func() {
		for _, v := range prev {
			v.Destroy()
		}
	}()
	for step := 0; step < steps; step++ {
		n := past + s
		var vals []ort.Value
		tensor := func(v ort.Value, err error) ort.Value {
			if err != nil {
				b.Fatal(err)
			}
			vals = append(vals, v)
			return v
		}
		in := []ort.Value{
			tensor(ort.NewTensor(ort.NewShape(int64(batch), int64(s)), ids)),
			tensor(ort.NewTensor(ort.NewShape(int64(batch), int64(n)), mask)),
			tensor(ort.NewTensor(ort.NewShape(int64(batch), int64(s)), pos)),
		}
		out := []ort.Value{tensor(ort.NewTensor(ort.NewShape(int64(batch), int64(s), int64(d.vocab)), d.logits))}
		for j := 0; j < 2*d.layers; j++ {
			switch {
			case !ortAlloc:
				in = append(in, tensor(ort.NewTensor(ort.NewShape(int64(batch), int64(d.kvHeads), int64(past), int64(d.headDim)), d.kv[cur][j])))
				out = append(out, tensor(ort.NewTensor(ort.NewShape(int64(batch), int64(d.kvHeads), int64(n), int64(d.headDim)), d.kv[1-cur][j])))
			case step == 0:
				in = append(in, tensor(ort.NewTensor(ort.NewShape(int64(batch), int64(d.kvHeads), 0, int64(d.headDim)), d.kv[cur][j])))
				out = append(out, nil)
			default:
				in = append(in, prev[j])
				out = append(out, nil)
			}
		}
		if err := d.session.Run(in, out); err != nil {
			b.Fatal(err)
		}
		for _, v := range vals {
			v.Destroy()
		}
		if ortAlloc {
			for _, v := range prev {
				v.Destroy()
			}
			prev = out[1:]
		}
		ids, pos = ids[:batch], pos[:batch]
		for i := 0; i < batch; i++ {
			row := d.logits[(i*s+s-1)*d.vocab : (i*s+s)*d.vocab]
			best := 0
			for k, x := range row {
				if x > row[best] {
					best = k
				}
			}
			ids[i], pos[i] = int64(best), int64(n)
		}
		if step == 0 {
			first = clock.Mono()
		}
		cur, past, s = 1-cur, n, 1
	}
	end := clock.Mono()
	return float64(batch*(steps-1)) / seconds(end-first), float64(batch*steps) / seconds(end-start)
}

// readBandwidth measures this machine's memory read bandwidth now: every core scans its share of
// a buffer of size bytes (far larger than any core's cache) with bytes.IndexByte for a byte the
// buffer never holds — the standard library's vectorised scan (AVX2 here), so the loop waits on
// memory and not on one scalar load per word, as the XOR loop it replaces did (it read 10 GB/s
// where decode itself streamed 16.6 GB/s) — best of passes. The buffer is kept between calls
// (same size), so a call inside a benchmark iteration costs only its passes.
func readBandwidth(size, passes int) float64 {
	if len(bwBuf) != size {
		bwBuf = make([]byte, size)
		for i := range bwBuf {
			bwBuf[i] = byte(i%251) + 2 // never 1: every scan reads its whole share
		}
	}
	buf := bwBuf
	workers := runtime.GOMAXPROCS(0)
	chunk := len(buf) / workers
	best := 0.0
	found := make([]int, workers)
	for pass := 0; pass < passes; pass++ {
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(part []byte) {
				defer wg.Done()
				found[w] = bytes.IndexByte(part, 1)
			}(buf[w*chunk : (w+1)*chunk])
		}
		wg.Wait()
		if bw := float64(chunk*workers) / time.Since(start).Seconds(); bw > best {
			best = bw
		}
	}
	for _, f := range found {
		if f != -1 {
			panic("readBandwidth: the scan stopped early")
		}
	}
	return best
}

// bwBuf is readBandwidth's buffer (benchmarks only; never touched concurrently).
var bwBuf []byte
