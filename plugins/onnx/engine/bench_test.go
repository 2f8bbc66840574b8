package engine_test

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
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

// The decode benchmark: synthetic:gpt2-124m, a 16-token prompt, 32 new tokens (EOS ignored),
// greedy, at batch 1 and 8; the same work through the plugin process and directly on
// onnxruntime_go in this process, alternating within every iteration.
// $LEM_BENCH_MODEL replaces the model (e.g. synthetic:gpt2-tiny, where per-step overheads
// show up that a large model hides).
var benchModel = cmp.Or(os.Getenv("LEM_BENCH_MODEL"), "synthetic:gpt2-124m")

const (
	benchPrompt = 16
	benchNew    = 32
)

// benchEnv is set up once per benchmark binary: the plugin process with the model loaded, the
// direct session, and the memory read bandwidth.
type benchEnv struct {
	client     *hostclient.Client
	inproc     *engine.Engine // the same engine in this process: the plugin minus process and RPC
	direct     *directLoop
	modelBytes int64
	bandwidth  float64 // bytes/s
	threads    int
}

var (
	benchOnce sync.Once
	bench     *benchEnv
	benchErr  string
)

func setupBench(b *testing.B) *benchEnv {
	b.Helper()
	benchOnce.Do(func() {
		v := testenv.Vocab(b)
		testenv.ORT(b)
		lib, _ := model.ORTLibrary()
		cache, err := loader.DefaultCacheDir() // gpt2-124m is ~500 MB: generate it once per machine
		if err != nil {
			benchErr = err.Error()
			return
		}
		threads := runtime.GOMAXPROCS(0)
		cfg := map[string]any{"cache_dir": cache, "vocab_dir": filepath.Dir(v.EncoderJSON), "library_path": lib, "threads": threads}
		dir, err := os.MkdirTemp("", "onnx-engine-bench-")
		if err != nil {
			benchErr = err.Error()
			return
		}
		bin := pluginBinary(b, dir)
		ctx := context.Background()
		c, err := hostclient.Open(ctx, bin)
		if err != nil {
			benchErr = err.Error()
			return
		}
		if errs, err := c.Configure(ctx, cfg); err != nil || len(errs) > 0 {
			benchErr = fmt.Sprintf("configure: %v %v", errs, err)
			return
		}
		a, err := c.Loader().Resolve(ctx, benchModel)
		if err != nil {
			benchErr = err.Error()
			return
		}
		lr, err := c.Engine().Load(ctx, sdk.LoadRequest{Artifact: *a, Device: sdk.Device{Kind: "cpu", Index: -1}})
		if err != nil {
			benchErr = err.Error()
			return
		}
		inproc := engine.New()
		s := engine.DefaultSettings()
		s.LibraryPath, s.Threads = lib, threads
		inproc.SetSettings(s)
		if _, err := inproc.Load(ctx, sdk.LoadRequest{Artifact: *a, Device: sdk.Device{Kind: "cpu", Index: -1}}); err != nil {
			benchErr = err.Error()
			return
		}
		d, err := newDirectLoop(a, threads)
		if err != nil {
			benchErr = err.Error()
			return
		}
		bench = &benchEnv{client: c, inproc: inproc, direct: d, modelBytes: lr.ModelBytes, bandwidth: readBandwidth(), threads: threads}
	})
	if bench == nil {
		b.Fatalf("benchmark setup: %s", benchErr)
	}
	return bench
}

// BenchmarkDecode reports, per iteration (one batch through each path, rotating which goes
// first), decode tokens/s through the plugin and direct, their ratio, the host-observed
// end-to-end ratio, the in-process engine's ratio to direct (which splits an overhead between
// the engine's code and the process boundary), and at batch 1 the memory-bandwidth roofline:
// read bandwidth ÷ model bytes.
//
//	go test -run '^$' -bench Decode -benchtime 3x -count 5 ./engine/ | tee new.txt; benchstat new.txt
func BenchmarkDecode(b *testing.B) {
	env := setupBench(b)
	for _, batch := range []int{1, 8} {
		b.Run("batch="+itoa(batch), func(b *testing.B) {
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
			req := sdk.GenerateRequest{Prompts: prompts, Decoding: sdk.Decoding{MaxNewTokens: benchNew, Greedy: true, IgnoreEOS: true}}
			// One untimed run of each warms them.
			env.viaPlugin(b, env.client.Engine(), req)
			env.viaPlugin(b, env.inproc, req)
			env.direct.run(b, ids, benchNew)
			var decode, e2e [3]float64 // plugin, in-process engine, direct
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for k := 0; k < 3; k++ {
					var d, e float64
					switch arm := (i + k) % 3; arm { // rotate which goes first
					case 0:
						d, e = env.viaPlugin(b, env.client.Engine(), req)
						decode[0], e2e[0] = decode[0]+d, e2e[0]+e
					case 1:
						d, e = env.viaPlugin(b, env.inproc, req)
						decode[1], e2e[1] = decode[1]+d, e2e[1]+e
					default:
						d, e = env.direct.run(b, ids, benchNew)
						decode[2], e2e[2] = decode[2]+d, e2e[2]+e
					}
				}
			}
			n := float64(b.N)
			plugin, direct := decode[0], decode[2]
			b.ReportMetric(plugin/n, "plugin-tok/s")
			b.ReportMetric(direct/n, "direct-tok/s")
			b.ReportMetric(plugin/direct, "ratio")
			b.ReportMetric(e2e[0]/e2e[2], "e2e-ratio")
			b.ReportMetric(decode[1]/direct, "inproc-ratio")
			if batch == 1 {
				roof := env.bandwidth / float64(env.modelBytes)
				b.ReportMetric(roof, "roofline-tok/s")
				b.ReportMetric(plugin/n/roof, "of-roofline")
				b.ReportMetric(env.bandwidth/1e9, "read-GB/s")
			}
		})
	}
}

// BenchmarkDirectOutputs compares, in the direct loop alone, present tensors written into
// preallocated buffers (what the engine does) with outputs onnxruntime_go allocates and copies
// into Go memory each step (the naive loop): the ratio is what avoiding the per-step copy of the
// cache is worth.
func BenchmarkDirectOutputs(b *testing.B) {
	env := setupBench(b)
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

// readBandwidth measures this machine's memory read bandwidth now: every core XORs its share of
// a 1 GiB buffer (far larger than any cache) as 64-bit words with eight independent
// accumulators — one cheap operation per 8 bytes, so the loop waits on memory, not on
// arithmetic (a float32 sum's add latency caps it below the memory's speed) — best of five
// passes.
func readBandwidth() float64 {
	buf := make([]uint64, 128<<20)
	for i := range buf {
		buf[i] = uint64(i) * 0x9e3779b97f4a7c15
	}
	workers := runtime.GOMAXPROCS(0)
	chunk := len(buf) / workers
	best := 0.0
	sink := make([]uint64, workers)
	for pass := 0; pass < 5; pass++ {
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(part []uint64) {
				defer wg.Done()
				var s0, s1, s2, s3, s4, s5, s6, s7 uint64
				for i := 0; i+8 <= len(part); i += 8 {
					p := part[i : i+8 : i+8]
					s0 ^= p[0]
					s1 ^= p[1]
					s2 ^= p[2]
					s3 ^= p[3]
					s4 ^= p[4]
					s5 ^= p[5]
					s6 ^= p[6]
					s7 ^= p[7]
				}
				sink[w] = s0 ^ s1 ^ s2 ^ s3 ^ s4 ^ s5 ^ s6 ^ s7
			}(buf[w*chunk : (w+1)*chunk])
		}
		wg.Wait()
		if bw := float64(chunk*workers*8) / time.Since(start).Seconds(); bw > best {
			best = bw
		}
	}
	runtime.KeepAlive(sink)
	return best
}
