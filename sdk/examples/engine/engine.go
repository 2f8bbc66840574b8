package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/clock"
)

// The plugin's identity. The Makefile builds this directory as lem-plugin-example-engine.
const (
	pluginName    = "example-engine"
	pluginVersion = "0.1.0"
)

// Configuration keys.
const (
	keyTokenDelay   = "token_delay"
	keyPrefillDelay = "prefill_token_delay"
)

// defaultVocab is the vocabulary of an artifact that states none.
const defaultVocab = 1000

// byteVocab is the least vocabulary that text prompts need: text is tokenized one id per byte.
const byteVocab = 256

func schema() []sdk.ConfigKey {
	return []sdk.ConfigKey{
		{Key: keyTokenDelay, Type: sdk.TypeDuration, Default: "2ms", Min: sdk.Bound(0), Max: sdk.Bound(10),
			Doc: "time one decode step takes (every request of the batch gets one token per step)"},
		{Key: keyPrefillDelay, Type: sdk.TypeDuration, Default: "20us", Min: sdk.Bound(0), Max: sdk.Bound(1),
			Doc: "prefill time per real input token of the batch; prefill ends with the first output token of every request"},
	}
}

// pace is how fast the toy engine works.
type pace struct {
	token   time.Duration // per decode step
	prefill time.Duration // per input token
}

// model is what Load keeps of an artifact.
type model struct {
	artifact sdk.Artifact
	device   sdk.Device
	vocab    int64
	eos      map[int32]bool
}

// engine is the toy engine. Its token ids follow next = (prev·31 + 7 + offset) mod vocab, where
// prev starts at the prompt's last id and offset is 0 for greedy decoding and the seed otherwise,
// so every answer can be recomputed by a test.
type engine struct {
	mu    sync.Mutex
	pace  pace
	model *model // nil until Load
}

// newPlugin is the plugin factory main serves.
func newPlugin() *sdk.Plugin {
	e := &engine{pace: pace{token: 2 * time.Millisecond, prefill: 20 * time.Microsecond}}
	return &sdk.Plugin{
		Name:        pluginName,
		Version:     pluginVersion,
		Description: "toy example engine: deterministic token ids at a configured pace, no model runtime",
		Schema:      schema(),
		Configure:   e.configure,
		Engine:      e,
	}
}

func (e *engine) configure(_ context.Context, cfg sdk.Config) ([]sdk.ConfigError, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.pace = pace{token: cfg.Duration(keyTokenDelay), prefill: cfg.Duration(keyPrefillDelay)}
	return nil, nil
}

// Load records the artifact: the toy engine reads no weights, so any artifact will do as long as
// its vocabulary and end-of-sequence ids make sense.
func (e *engine) Load(_ context.Context, req sdk.LoadRequest) (*sdk.LoadResult, error) {
	start := clock.Mono()
	a := req.Artifact
	// The toy engine computes nothing, so it runs on any device: "cpu" or any vendor's
	// accelerator. It only refuses a device kind that is not a plain lower-case name.
	if !validKind(req.Device.Kind) {
		return nil, fmt.Errorf("load %q: device kind %q: %w (valid: \"cpu\" or a lower-case vendor name such as \"nvidia\")", a.Reference, req.Device.Kind, sdk.ErrInvalidArgument)
	}
	m := &model{artifact: a, device: req.Device, vocab: int64(a.VocabSize), eos: map[int32]bool{}}
	if a.VocabSize < 0 {
		return nil, fmt.Errorf("load %q: vocabulary size %d: %w", a.Reference, a.VocabSize, sdk.ErrInvalidArgument)
	}
	if m.vocab == 0 {
		m.vocab = defaultVocab
	}
	for _, id := range a.EOSTokenIDs {
		if id < 0 || int64(id) >= m.vocab {
			return nil, fmt.Errorf("load %q: EOS id %d outside the vocabulary of %d: %w", a.Reference, id, m.vocab, sdk.ErrInvalidArgument)
		}
		m.eos[id] = true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.model != nil {
		return nil, fmt.Errorf("load %q: %q is already loaded; Unload it first: %w", a.Reference, e.model.artifact.Reference, sdk.ErrFailedPrecondition)
	}
	e.model = m
	return &sdk.LoadResult{
		LoadNS:            clock.Mono() - start,
		ResidentBytes:     residentBytes(),
		ModelBytes:        0, // no weights
		ExecutionProvider: "toy",
		RuntimeVersions:   map[string]string{pluginName: pluginVersion},
	}, nil
}

// Unload forgets the artifact. A Generate already running finishes on what it started with.
func (e *engine) Unload(context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.model = nil
	return nil
}

// Warmup runs the batch req.Batches times.
func (e *engine) Warmup(ctx context.Context, req sdk.WarmupRequest) ([]sdk.BatchTiming, error) {
	if req.Batches < 0 {
		return nil, fmt.Errorf("warmup: %d batches: %w", req.Batches, sdk.ErrInvalidArgument)
	}
	out := make([]sdk.BatchTiming, 0, req.Batches)
	for i := 0; i < req.Batches; i++ {
		bt, err := e.Generate(ctx, req.GenerateRequest, func(sdk.RequestResult) error { return nil })
		if err != nil {
			return out, fmt.Errorf("warmup batch %d of %d: %w", i+1, req.Batches, err)
		}
		out = append(out, *bt)
	}
	return out, nil
}

// request is one prompt in flight.
type request struct {
	res    sdk.RequestResult
	prev   int64
	active bool
}

// Generate runs one static batch: a prefill that yields every request's first token, then one
// decode step per token_delay until every request has finished.
func (e *engine) Generate(ctx context.Context, req sdk.GenerateRequest, emit func(sdk.RequestResult) error) (*sdk.BatchTiming, error) {
	e.mu.Lock()
	m, p := e.model, e.pace
	e.mu.Unlock()
	if m == nil {
		return nil, fmt.Errorf("generate: no model loaded (call Load first): %w", sdk.ErrFailedPrecondition)
	}
	reqs, err := m.prepare(req)
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	d := req.Decoding
	var offset int64
	if !d.Greedy {
		offset = int64(d.Seed % uint64(m.vocab))
	}
	bt := &sdk.BatchTiming{Requests: len(reqs)}
	bt.StartMonoNS = clock.Mono()
	for i := range reqs {
		reqs[i].res.StartMonoNS = bt.StartMonoNS
		bt.InputTokens += reqs[i].res.InputTokens
	}
	due := bt.StartMonoNS + int64(p.prefill)*int64(bt.InputTokens)
	active := len(reqs)
	for step := 0; active > 0; step++ {
		if step > 0 {
			due += int64(p.token)
			bt.Steps++
		}
		if err := sleepUntil(ctx, due); err != nil {
			return nil, fmt.Errorf("generate: stopped after %d steps: %w", bt.Steps, err)
		}
		now := clock.Mono()
		if step == 0 {
			// Decode steps follow a fixed grid from the first token, so one late wake-up does
			// not push every later token back.
			bt.FirstTokenMonoNS, due = now, now
		}
		for i := range reqs {
			r := &reqs[i]
			if !r.active {
				continue
			}
			r.prev = (r.prev*31 + 7 + offset) % m.vocab
			id := int32(r.prev)
			r.res.OutputIDs = append(r.res.OutputIDs, id)
			r.res.TokenMonoNS = append(r.res.TokenMonoNS, now)
			switch {
			case m.eos[id] && !d.IgnoreEOS:
				r.res.FinishReason = "eos"
			case len(r.res.OutputIDs) == d.MaxNewTokens:
				r.res.FinishReason = "length"
			default:
				continue
			}
			r.active = false
			active--
			bt.OutputTokens += len(r.res.OutputIDs)
			bt.EndMonoNS = now
			if d.ReturnText {
				r.res.Text = render(r.res.OutputIDs, m.eos)
			}
			if err := emit(r.res); err != nil {
				return nil, err
			}
		}
	}
	return bt, nil
}

// prepare validates a batch and tokenizes its prompts.
func (m *model) prepare(req sdk.GenerateRequest) ([]request, error) {
	d := req.Decoding
	switch {
	case len(req.Prompts) == 0:
		return nil, fmt.Errorf("no prompts: %w", sdk.ErrInvalidArgument)
	case d.MaxNewTokens <= 0:
		return nil, fmt.Errorf("max_new_tokens %d must be positive: %w", d.MaxNewTokens, sdk.ErrInvalidArgument)
	case d.MaxInputTokens < 0:
		return nil, fmt.Errorf("max_input_tokens %d is negative: %w", d.MaxInputTokens, sdk.ErrInvalidArgument)
	}
	// The contract of sdk.Decoding: 0 is the context minus MaxNewTokens, so that every prompt
	// and its new tokens fit; a model without a context length has no limit.
	limit := d.MaxInputTokens
	if ctx := m.artifact.ContextLength; limit == 0 && ctx > 0 {
		if limit = ctx - d.MaxNewTokens; limit <= 0 {
			return nil, fmt.Errorf("max_new_tokens %d leaves no room for a prompt in the context of %d tokens: %w", d.MaxNewTokens, ctx, sdk.ErrInvalidArgument)
		}
	}
	seen := map[string]bool{}
	reqs := make([]request, len(req.Prompts))
	for i, pr := range req.Prompts {
		if seen[pr.ID] {
			return nil, fmt.Errorf("prompt id %q is repeated: %w", pr.ID, sdk.ErrInvalidArgument)
		}
		seen[pr.ID] = true
		ids, err := m.tokenize(pr)
		if err != nil {
			return nil, fmt.Errorf("prompt %q: %w", pr.ID, err)
		}
		r := request{res: sdk.RequestResult{ID: pr.ID, Index: i}, active: true}
		if limit > 0 && len(ids) > limit {
			ids, r.res.Truncated = ids[len(ids)-limit:], true
		}
		r.res.InputTokens = len(ids)
		r.prev = int64(ids[len(ids)-1])
		reqs[i] = r
	}
	return reqs, nil
}

// tokenize returns a prompt's ids: its own ids when it has them, else one id per byte of its text.
func (m *model) tokenize(pr sdk.Prompt) ([]int32, error) {
	if len(pr.IDs) > 0 {
		for _, id := range pr.IDs {
			if id < 0 || int64(id) >= m.vocab {
				return nil, fmt.Errorf("token id %d outside the vocabulary of %d: %w", id, m.vocab, sdk.ErrInvalidArgument)
			}
		}
		return pr.IDs, nil
	}
	if pr.Text == "" {
		return nil, fmt.Errorf("no tokens (empty text and no ids): %w", sdk.ErrInvalidArgument)
	}
	if m.vocab < byteVocab {
		return nil, fmt.Errorf("text prompts need a vocabulary of at least %d byte ids, the model has %d: %w", byteVocab, m.vocab, sdk.ErrInvalidArgument)
	}
	ids := make([]int32, len(pr.Text))
	for i := 0; i < len(pr.Text); i++ {
		ids[i] = int32(pr.Text[i])
	}
	return ids, nil
}

// render turns output ids into text the way the byte tokenizer would: ids below 256 are bytes,
// EOS and larger ids are left out, and invalid UTF-8 becomes U+FFFD (text crosses the RPC as a
// protobuf string, which must be UTF-8).
func render(ids []int32, eos map[int32]bool) string {
	var b strings.Builder
	for _, id := range ids {
		if id < byteVocab && !eos[id] {
			b.WriteByte(byte(id))
		}
	}
	return strings.ToValidUTF8(b.String(), "\uFFFD")
}

// sleepUntil waits until the monotonic clock reaches due (ns) or ctx ends.
func sleepUntil(ctx context.Context, due int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	wait := time.Duration(due - clock.Mono())
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// residentBytes returns the resident memory of this process (0 when /proc is unreadable).
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}

// validKind reports whether kind is "" (cpu), "cpu" or a vendor name: lower-case letters,
// digits, "-" and "_".
func validKind(kind string) bool {
	for _, r := range kind {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
