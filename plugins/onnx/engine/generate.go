package engine

import (
	"context"
	"fmt"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/clock"
)

// arena holds a loaded model's step buffers, reused across steps and batches: ONNX Runtime
// reads the inputs from them and writes the outputs into them, so no step copies the cache.
// kv[set][j] is the j-th cache tensor (layer j/2, key for even j, value for odd) of buffer set
// set; a step reads the past from one set and writes the present into the other.
type arena struct {
	ids, mask, pos []int64
	logits         []float32
	kv             [2][][]float32
	in, out        []ort.Value
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// ensure sizes the buffers for b rows, at most maxS new tokens per step and at most capT
// positions in the cache.
func (m *loaded) ensure(b, maxS, capT int) {
	a := &m.buf
	a.ids = grow(a.ids, b*capT)
	a.pos = grow(a.pos, b*capT)
	a.mask = grow(a.mask, b*capT)
	a.logits = grow(a.logits, b*maxS*m.vocab)
	per := b * m.kvHeads * capT * m.headDim
	for set := range a.kv {
		if len(a.kv[set]) != 2*m.layers {
			a.kv[set] = make([][]float32, 2*m.layers)
		}
		for j := range a.kv[set] {
			a.kv[set][j] = grow(a.kv[set][j], per)
		}
	}
	a.in = grow(a.in, len(m.inputs))
	a.out = grow(a.out, len(m.outputs))
}

// forward runs one pass over s new tokens per row with total positions in the cache after it:
// ids, mask and positions are in the arena; the past is read from kv set cur (total-s
// positions) and the present written into set 1-cur; logits land in the arena as [b, s, vocab].
func (m *loaded) forward(run *ort.RunOptions, b, s, total, cur int) (err error) {
	a := &m.buf
	in, out := a.in[:0], a.out[:0]
	defer func() {
		for _, v := range in {
			v.Destroy()
		}
		for _, v := range out {
			v.Destroy()
		}
	}()
	i64 := func(data []int64, dims ...int64) error {
		t, err := ort.NewTensor(ort.NewShape(dims...), data)
		if err != nil {
			return fmt.Errorf("input tensor %v: %w", dims, err)
		}
		in = append(in, t)
		return nil
	}
	if err := i64(a.ids[:b*s], int64(b), int64(s)); err != nil {
		return err
	}
	if err := i64(a.mask[:b*total], int64(b), int64(total)); err != nil {
		return err
	}
	if m.hasPos {
		if err := i64(a.pos[:b*s], int64(b), int64(s)); err != nil {
			return err
		}
	}
	past := total - s
	f32 := func(dst *[]ort.Value, data []float32, dims ...int64) error {
		n := int64(1)
		for _, d := range dims {
			n *= d
		}
		t, err := ort.NewTensor(ort.NewShape(dims...), data[:n])
		if err != nil {
			return fmt.Errorf("tensor %v: %w", dims, err)
		}
		*dst = append(*dst, t)
		return nil
	}
	if err := f32(&out, a.logits, int64(b), int64(s), int64(m.vocab)); err != nil {
		return err
	}
	for j := 0; j < 2*m.layers; j++ {
		if err := f32(&in, a.kv[cur][j], int64(b), int64(m.kvHeads), int64(past), int64(m.headDim)); err != nil {
			return err
		}
		if err := f32(&out, a.kv[1-cur][j], int64(b), int64(m.kvHeads), int64(total), int64(m.headDim)); err != nil {
			return err
		}
	}
	return m.session.RunWithOptions(in, out, run)
}

// row is one request of a batch.
type row struct {
	res    sdk.RequestResult
	hist   []int64 // real tokens so far: the (truncated) prompt, then the output
	pads   int     // left padding in the current cache
	active bool
	rng    *rng
}

// generate runs one static batch (see Engine.Generate). The batch starts — and so do its
// requests — when the call begins, so tokenizing is part of every request's time to first token.
func (m *loaded) generate(ctx context.Context, req sdk.GenerateRequest, emit func(sdk.RequestResult) error, hook func(int, [][]float32)) (*sdk.BatchTiming, error) {
	d := req.Decoding
	bt := &sdk.BatchTiming{StartMonoNS: clock.Mono(), Requests: len(req.Prompts)}
	rows, err := m.prepare(req, bt.StartMonoNS)
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	b := len(rows)
	width := 0
	for _, r := range rows {
		width = max(width, len(r.hist))
		bt.InputTokens += r.res.InputTokens
	}
	// Cache positions this batch can need, and the widest pass: the prefill, or a context
	// shift's re-prefill of half the context.
	capT, maxS := min(m.context, width+d.MaxNewTokens-1), width
	keep := max(1, m.context/2)
	if width+d.MaxNewTokens-1 > m.context {
		capT, maxS = m.context, max(width, keep)
	}
	m.ensure(b, maxS, capT)

	run, release, err := runOptions(ctx)
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	defer release()

	var smp *sampler
	if !d.Greedy {
		smp = &sampler{temperature: d.Temperature, topK: d.TopK, topP: d.TopP}
	}
	cur, total, s := 0, 0, 0
	active := b
	for step := 0; active > 0; step++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("generate: stopped after %d decode steps: %w", bt.Steps, err)
		}
		if step == 0 || total+1 > m.context {
			// Prefill, or a context shift: (re)build every row's cache from its last tokens.
			limit := width
			if step > 0 {
				limit = keep
			}
			s = m.fillPrefill(rows, limit)
			total = s
		} else {
			s = 1
			total++
			m.fillDecode(rows, total)
		}
		if err := m.forward(run, b, s, total, cur); err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("generate: stopped after %d decode steps: %w", bt.Steps, ctx.Err())
			}
			return nil, fmt.Errorf("generate: step %d (batch %d, %d new tokens per row, %d positions): %v", step, b, s, total, err)
		}
		cur = 1 - cur
		if step > 0 {
			bt.Steps++
		}
		if hook != nil {
			hook(step, m.lastLogits(b, s))
		}
		for _, r := range rows {
			if !r.active {
				continue
			}
			lg := m.buf.logits[(r.res.Index*s+s-1)*m.vocab : (r.res.Index*s+s)*m.vocab]
			var id int32
			if smp == nil {
				id = argmax(lg)
			} else {
				id = smp.sample(lg, r.rng)
			}
			r.res.OutputIDs = append(r.res.OutputIDs, id)
			r.hist = append(r.hist, int64(id))
		}
		now := clock.Mono()
		if step == 0 {
			bt.FirstTokenMonoNS = now
		}
		for _, r := range rows {
			if !r.active {
				continue
			}
			r.res.TokenMonoNS = append(r.res.TokenMonoNS, now)
			id := r.res.OutputIDs[len(r.res.OutputIDs)-1]
			switch {
			case m.eos[id] && !d.IgnoreEOS:
				r.res.FinishReason = "eos"
			case len(r.res.OutputIDs) >= d.MaxNewTokens:
				r.res.FinishReason = "length"
			default:
				continue
			}
			r.active = false
			active--
			bt.OutputTokens += len(r.res.OutputIDs)
			bt.EndMonoNS = now
			if d.ReturnText {
				if r.res.Text, err = m.text(r.res); err != nil {
					return nil, fmt.Errorf("generate: request %q: %w", r.res.ID, err)
				}
			}
			if err := emit(r.res); err != nil {
				return nil, err
			}
		}
	}
	return bt, nil
}

// runOptions returns run options that ONNX Runtime's Run watches: cancelling ctx terminates a
// pass in flight, so even a long prefill stops promptly. release must be called once.
func runOptions(ctx context.Context) (*ort.RunOptions, func(), error) {
	run, err := ort.NewRunOptions()
	if err != nil {
		return nil, nil, fmt.Errorf("run options: %w", err)
	}
	var mu sync.Mutex
	live := true
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if live {
			run.Terminate()
		}
	})
	return run, func() {
		stop()
		mu.Lock()
		defer mu.Unlock()
		live = false
		run.Destroy()
	}, nil
}

// fillPrefill lays out every row's last limit tokens left-padded to a common width, with the
// attention mask (0 on padding) and positions from the mask (the count of real tokens before
// each one; padding gets 1, as transformers does). It returns the width.
func (m *loaded) fillPrefill(rows []*row, limit int) int {
	width := 0
	for _, r := range rows {
		width = max(width, min(limit, len(r.hist)))
	}
	a := &m.buf
	for i, r := range rows {
		toks := r.hist[len(r.hist)-min(limit, len(r.hist)):]
		r.pads = width - len(toks)
		base := i * width
		for j := 0; j < width; j++ {
			if j < r.pads {
				a.ids[base+j], a.mask[base+j], a.pos[base+j] = m.pad, 0, 1
				continue
			}
			a.ids[base+j], a.mask[base+j], a.pos[base+j] = toks[j-r.pads], 1, int64(j-r.pads)
		}
	}
	return width
}

// fillDecode lays out one new token per row (a finished row repeats its last token, its output
// ignored) for a cache of total positions, in the model's arena.
func (m *loaded) fillDecode(rows []*row, total int) { fillDecode(&m.buf, rows, total) }

// lastLogits copies each row's last-position logits (for the test hook).
func (m *loaded) lastLogits(b, s int) [][]float32 {
	out := make([][]float32, b)
	for i := range out {
		out[i] = append([]float32(nil), m.buf.logits[(i*s+s-1)*m.vocab:(i*s+s)*m.vocab]...)
	}
	return out
}

// prepare tokenizes and truncates the prompts. MaxInputTokens 0 means the context minus
// MaxNewTokens (half the context when MaxNewTokens leaves less than one token); no prompt is
// ever longer than the context.
func (m *loaded) prepare(req sdk.GenerateRequest, start int64) ([]*row, error) {
	d := req.Decoding
	limit := d.MaxInputTokens
	if limit == 0 {
		limit = m.context - d.MaxNewTokens
		if limit < 1 {
			limit = max(1, m.context/2)
		}
	}
	limit = min(limit, m.context)
	rows := make([]*row, len(req.Prompts))
	for i, p := range req.Prompts {
		ids, err := m.tokens(p)
		if err != nil {
			return nil, fmt.Errorf("prompt %d (%q): %w", i, p.ID, err)
		}
		r := &row{res: sdk.RequestResult{ID: p.ID, Index: i, StartMonoNS: start}, active: true}
		if len(ids) > limit {
			ids, r.res.Truncated = ids[len(ids)-limit:], true
		}
		r.res.InputTokens = len(ids)
		r.hist = make([]int64, len(ids), len(ids)+min(d.MaxNewTokens, 1<<16))
		for j, id := range ids {
			r.hist[j] = int64(id)
		}
		r.res.OutputIDs = make([]int32, 0, min(d.MaxNewTokens, 1<<16))
		r.res.TokenMonoNS = make([]int64, 0, min(d.MaxNewTokens, 1<<16))
		if !d.Greedy {
			r.rng = newRNG(d.Seed, i)
		}
		rows[i] = r
	}
	return rows, nil
}

// tokens returns a prompt's ids: its own (checked against the vocabulary), else its text
// tokenized with the model's tokenizer.
func (m *loaded) tokens(p sdk.Prompt) ([]int32, error) {
	if len(p.IDs) > 0 {
		for j, id := range p.IDs {
			if id < 0 || int(id) >= m.vocab {
				return nil, fmt.Errorf("%w: token id %d at index %d is outside the vocabulary (valid: 0..%d)", sdk.ErrInvalidArgument, id, j, m.vocab-1)
			}
		}
		return p.IDs, nil
	}
	if m.tok == nil {
		return nil, fmt.Errorf("%w: %s; send token ids instead of text", sdk.ErrInvalidArgument, m.noTokenizer())
	}
	ids := m.tok.Encode(p.Text)
	if len(ids) == 0 {
		return nil, fmt.Errorf("%w: the text tokenizes to no tokens", sdk.ErrInvalidArgument)
	}
	return ids, nil
}

// noTokenizer says why the engine has no tokenizer.
func (m *loaded) noTokenizer() string {
	if m.idsOnly {
		return "the model was loaded for token ids only (the host set token_ids_only)"
	}
	return "the model has no tokenizer files"
}

// text detokenizes a finished request's output, leaving out the EOS it stopped on.
func (m *loaded) text(res sdk.RequestResult) (string, error) {
	if m.tok == nil {
		return "", fmt.Errorf("%w: return_text: %s", sdk.ErrInvalidArgument, m.noTokenizer())
	}
	ids := res.OutputIDs
	if res.FinishReason == "eos" {
		ids = ids[:len(ids)-1]
	}
	return m.tok.Decode(ids)
}
