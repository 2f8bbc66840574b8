package engine

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/lemctl/lemctl/plugins/onnx/model"
	"github.com/lemctl/lemctl/plugins/onnx/tokenizer"
	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/clock"
)

// Engine implements sdk.Engine on ONNX Runtime. The zero value is not usable; call New.
type Engine struct {
	mu       sync.Mutex
	settings Settings
	m        *loaded

	// run serialises Generate, Warmup and Unload: a loaded model has one set of buffers.
	run sync.Mutex

	// onStep, when set (tests only), sees every forward pass: step 0 is the prefill, and
	// logits[i] is row i's next-token distribution (finished rows included).
	onStep func(step int, logits [][]float32)
}

var _ sdk.Engine = (*Engine)(nil)

// New returns an engine with default settings and no model.
func New() *Engine { return &Engine{settings: DefaultSettings()} }

// SetSettings replaces the settings; they apply from the next Load (and, for MaxBatchSize, the
// next Generate).
func (e *Engine) SetSettings(s Settings) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.settings = s
}

// Settings returns the current settings.
func (e *Engine) Settings() Settings {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.settings
}

// loaded is a model open in an ONNX Runtime session.
type loaded struct {
	art      sdk.Artifact
	session  *ort.DynamicAdvancedSession
	inputs   []string // input_ids, attention_mask, [position_ids], past_key_values.{i}.key|value…
	outputs  []string // logits, present.{i}.key|value…
	hasPos   bool
	provider string
	// modelBytes is the size of the model file and its external-data files.
	modelBytes int64

	layers, kvHeads, headDim, vocab, context int
	eos                                      map[int32]bool
	pad                                      int64
	tok                                      *tokenizer.Tokenizer
	// idsOnly: loaded for token ids only (sdk.LoadRequest.TokenIDsOnly), so tok was not loaded.
	idsOnly bool

	buf arena
}

// Load implements sdk.Engine.
func (e *Engine) Load(ctx context.Context, req sdk.LoadRequest) (*sdk.LoadResult, error) {
	e.run.Lock()
	defer e.run.Unlock()
	e.mu.Lock()
	if e.m != nil {
		e.mu.Unlock()
		return nil, fmt.Errorf("%w: load %s: a model (%s) is already loaded; Unload it first", sdk.ErrFailedPrecondition, req.Artifact.Reference, e.m.art.Reference)
	}
	s := e.settings
	e.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch req.Device.Kind {
	case "", "cpu", "cuda", "nvidia":
	default:
		return nil, fmt.Errorf("%w: load %s: device kind %q (valid: cpu, nvidia or its older name cuda)", sdk.ErrInvalidArgument, req.Artifact.Reference, req.Device.Kind)
	}
	start := clock.Mono()
	version, err := model.InitORT(s.LibraryPath)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", req.Artifact.Reference, err)
	}
	m, err := open(req, s)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", req.Artifact.Reference, err)
	}
	res := &sdk.LoadResult{
		LoadNS:            clock.Mono() - start,
		ResidentBytes:     residentBytes(),
		ExecutionProvider: m.provider,
		RuntimeVersions:   map[string]string{"onnxruntime": version},
	}
	res.ModelBytes = m.modelBytes
	e.mu.Lock()
	e.m = m
	e.mu.Unlock()
	return res, nil
}

// open inspects the model directory and creates the session.
func open(req sdk.LoadRequest, s Settings) (*loaded, error) {
	a := req.Artifact
	if a.Path == "" {
		return nil, fmt.Errorf("%w: the artifact names no model file", sdk.ErrInvalidArgument)
	}
	dir := a.Path
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		dir = filepath.Dir(dir)
	}
	in, err := model.Inspect(dir)
	if err != nil {
		return nil, err
	}
	// Weights may be float32 or quantised (int8/int4 MatMulNBits or QDQ): either way the
	// activations, the logits and the KV cache this engine feeds and reads are float32.
	if in.DType != "float32" && in.Precision != "int8" && in.Precision != "int4" {
		return nil, fmt.Errorf("%w: model %s has %s weights; this engine runs models with float32 activations (float32, int8 or int4 weights)", sdk.ErrInvalidArgument, in.ModelPath, in.DType)
	}
	for _, o := range in.Outputs {
		if o.Name == model.Logits && o.DType != "float32" {
			return nil, fmt.Errorf("%w: model %s has %s logits; this engine reads float32 logits", sdk.ErrInvalidArgument, in.ModelPath, o.DType)
		}
	}
	c := in.Config
	m := &loaded{
		art: a, hasPos: in.HasPositionIDs,
		layers: c.Layers, kvHeads: c.KVHeads, headDim: c.HeadDim, vocab: c.Vocab, context: c.ContextLength,
		eos: map[int32]bool{}, pad: 0,
	}
	if a.ContextLength > 0 {
		m.context = a.ContextLength
	}
	for _, id := range a.EOSTokenIDs {
		m.eos[id] = true
	}
	switch {
	case a.PadTokenID >= 0:
		m.pad = int64(a.PadTokenID)
	case len(a.EOSTokenIDs) > 0:
		m.pad = int64(a.EOSTokenIDs[0])
	}
	m.art.Path = in.ModelPath
	for _, f := range append([]string{in.ModelPath}, in.DataFiles...) {
		st, err := os.Stat(f)
		if err != nil {
			return nil, fmt.Errorf("%w: model file: %v", sdk.ErrNotFound, err)
		}
		m.modelBytes += st.Size()
	}
	m.inputs = []string{model.InputIDs, model.AttentionMask}
	if m.hasPos {
		m.inputs = append(m.inputs, model.PositionIDs)
	}
	m.outputs = []string{model.Logits}
	for i := 0; i < m.layers; i++ {
		m.inputs = append(m.inputs, model.PastKey(i), model.PastValue(i))
		m.outputs = append(m.outputs, model.PresentKey(i), model.PresentValue(i))
	}
	m.idsOnly = req.TokenIDsOnly
	if len(in.TokenizerFiles) > 0 && !req.TokenIDsOnly {
		if m.tok, err = tokenizer.Load(in.TokenizerFiles); err != nil {
			return nil, err
		}
	}
	opts, provider, err := sessionOptions(req, s)
	if err != nil {
		return nil, err
	}
	defer opts.Destroy()
	m.provider = provider
	m.session, err = ort.NewDynamicAdvancedSession(in.ModelPath, m.inputs, m.outputs, opts)
	if err != nil {
		return nil, fmt.Errorf("%w: create an ONNX Runtime session for %s on %s: %v", sdk.ErrFailedPrecondition, in.ModelPath, provider, err)
	}
	return m, nil
}

// sessionOptions builds the session options: threads, graph optimisation and the provider.
func sessionOptions(req sdk.LoadRequest, s Settings) (*ort.SessionOptions, string, error) {
	provider := s.Provider
	switch req.Device.Kind {
	case "", "cpu":
		if provider == ProviderAuto {
			provider = ProviderCPU
		}
	case "cuda", "nvidia": // "nvidia": the vendor the nvml meter reports; "cuda": its older name
		if provider == ProviderAuto {
			provider = ProviderCUDA
		}
	default:
		return nil, "", fmt.Errorf("%w: device kind %q (valid: cpu, nvidia or its older name cuda)", sdk.ErrInvalidArgument, req.Device.Kind)
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, "", fmt.Errorf("create session options: %w", err)
	}
	fail := func(err error) (*ort.SessionOptions, string, error) {
		opts.Destroy()
		return nil, "", err
	}
	threads := s.Threads
	if req.Threads > 0 {
		threads = req.Threads
	}
	if threads > 0 {
		if err := opts.SetIntraOpNumThreads(threads); err != nil {
			return fail(fmt.Errorf("%w: intra-op threads %d: %v", sdk.ErrInvalidArgument, threads, err))
		}
	}
	if s.InterOpThreads > 0 {
		if err := opts.SetInterOpNumThreads(s.InterOpThreads); err != nil {
			return fail(fmt.Errorf("%w: inter-op threads %d: %v", sdk.ErrInvalidArgument, s.InterOpThreads, err))
		}
	}
	level, ok := graphLevels[s.GraphOptimization]
	if !ok {
		level = ort.GraphOptimizationLevelEnableAll
	}
	if err := opts.SetGraphOptimizationLevel(level); err != nil {
		return fail(fmt.Errorf("graph optimisation level %s: %w", s.GraphOptimization, err))
	}
	if provider == ProviderCUDA {
		if err := appendCUDA(opts, req.Device); err != nil {
			return fail(err)
		}
	}
	return opts, provider, nil
}

// appendCUDA registers the CUDA execution provider, or explains why it cannot: a CPU-only
// ONNX Runtime build, or a missing libonnxruntime_providers_cuda.so, CUDA or cuDNN library.
func appendCUDA(opts *ort.SessionOptions, dev sdk.Device) error {
	lib, _ := model.ORTLibrary()
	hint := fmt.Sprintf("the CUDA execution provider needs an ONNX Runtime %s GPU build (libonnxruntime_providers_cuda.so and libonnxruntime_providers_shared.so beside %s) and the CUDA and cuDNN libraries it was built for on the library path; set provider = \"cpu\" to run on the CPU instead",
		model.RequiredORTVersion, lib)
	co, err := ort.NewCUDAProviderOptions()
	if err != nil {
		return fmt.Errorf("%w: CUDA provider unavailable: %v; %s", sdk.ErrFailedPrecondition, err, hint)
	}
	defer co.Destroy()
	index := max(dev.Index, 0)
	if err := co.Update(map[string]string{"device_id": strconv.Itoa(index)}); err != nil {
		return fmt.Errorf("%w: CUDA provider options for device %d: %v; %s", sdk.ErrFailedPrecondition, index, err, hint)
	}
	if err := opts.AppendExecutionProviderCUDA(co); err != nil {
		return fmt.Errorf("%w: CUDA provider unavailable: %v; %s", sdk.ErrFailedPrecondition, err, hint)
	}
	return nil
}

// close frees the session and the buffers.
func (m *loaded) close() {
	if m.session != nil {
		m.session.Destroy()
		m.session = nil
	}
	m.buf = arena{}
}

// Unload implements sdk.Engine. It waits for a running Generate to return.
func (e *Engine) Unload(context.Context) error {
	e.run.Lock()
	defer e.run.Unlock()
	e.mu.Lock()
	m := e.m
	e.m = nil
	e.mu.Unlock()
	if m != nil {
		m.close()
	}
	return nil
}

// Warmup implements sdk.Engine: req.Batches runs of the batch, their timings in order.
func (e *Engine) Warmup(ctx context.Context, req sdk.WarmupRequest) ([]sdk.BatchTiming, error) {
	if req.Batches < 0 {
		return nil, fmt.Errorf("%w: warmup: %d batches (want ≥ 0)", sdk.ErrInvalidArgument, req.Batches)
	}
	timings := make([]sdk.BatchTiming, 0, req.Batches)
	for i := 0; i < req.Batches; i++ {
		bt, err := e.Generate(ctx, req.GenerateRequest, func(sdk.RequestResult) error { return nil })
		if err != nil {
			return nil, fmt.Errorf("warmup batch %d of %d: %w", i+1, req.Batches, err)
		}
		timings = append(timings, *bt)
	}
	return timings, nil
}

// Generate implements sdk.Engine.
func (e *Engine) Generate(ctx context.Context, req sdk.GenerateRequest, emit func(sdk.RequestResult) error) (*sdk.BatchTiming, error) {
	e.run.Lock()
	defer e.run.Unlock()
	e.mu.Lock()
	m, s, hook := e.m, e.settings, e.onStep
	e.mu.Unlock()
	if m == nil {
		return nil, fmt.Errorf("%w: generate: no model is loaded (call Load first)", sdk.ErrFailedPrecondition)
	}
	if err := checkRequest(req, s.MaxBatchSize); err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	return m.generate(ctx, req, emit, hook)
}

// checkRequest rejects a batch before any work.
func checkRequest(req sdk.GenerateRequest, maxBatch int) error {
	d := req.Decoding
	switch {
	case len(req.Prompts) == 0:
		return fmt.Errorf("%w: no prompts", sdk.ErrInvalidArgument)
	case maxBatch > 0 && len(req.Prompts) > maxBatch:
		return fmt.Errorf("%w: %d prompts exceed the configured max_batch_size %d", sdk.ErrInvalidArgument, len(req.Prompts), maxBatch)
	case d.MaxNewTokens <= 0:
		return fmt.Errorf("%w: max_new_tokens %d must be positive", sdk.ErrInvalidArgument, d.MaxNewTokens)
	case d.MaxInputTokens < 0:
		return fmt.Errorf("%w: max_input_tokens %d is negative (0 means the context minus max_new_tokens)", sdk.ErrInvalidArgument, d.MaxInputTokens)
	}
	if !d.Greedy {
		switch {
		case !(d.Temperature > 0) || d.Temperature > 1e6:
			return fmt.Errorf("%w: temperature %g must be in (0, 1e6] when sampling (or decode greedily)", sdk.ErrInvalidArgument, d.Temperature)
		case d.TopK < 0:
			return fmt.Errorf("%w: top_k %d is negative (0 disables it)", sdk.ErrInvalidArgument, d.TopK)
		case !(d.TopP > 0 && d.TopP <= 1):
			return fmt.Errorf("%w: top_p %g must be in (0, 1] (1 disables it)", sdk.ErrInvalidArgument, d.TopP)
		}
	}
	seen := make(map[string]int, len(req.Prompts))
	for i, p := range req.Prompts {
		if j, dup := seen[p.ID]; dup && p.ID != "" {
			return fmt.Errorf("%w: prompts %d and %d have the same id %q", sdk.ErrInvalidArgument, j, i, p.ID)
		}
		seen[p.ID] = i
		if len(p.IDs) == 0 && p.Text == "" {
			return fmt.Errorf("%w: prompt %d (%q) has neither text nor token ids", sdk.ErrInvalidArgument, i, p.ID)
		}
	}
	return nil
}

// residentBytes is VmRSS from /proc/self/status (0 when unreadable).
func residentBytes() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
