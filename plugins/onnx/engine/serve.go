package engine

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/lemctl/lemctl/plugins/onnx/tokenizer"
	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/clock"
)

var _ sdk.ContinuousEngine = (*Engine)(nil)

// Serve implements sdk.ContinuousEngine: continuous batching on the loaded model.
//
// Each iteration is one step boundary: the requests waiting on in are taken (Serve blocks on in
// only when nothing runs), cancelled rows leave, rows whose next token would pass the context
// are re-prefilled from their last half context (a context shift, as Generate does), the
// joiners are prefilled together in one pass (left-padded among themselves) and their caches
// merged into the running batch's — every row re-laid out left-padded to the longest row, so
// the batch never carries more padding than its longest row needs — and then one decode pass
// runs over the whole batch. The cache is copied only at those boundaries; a decode pass copies
// nothing (ONNX Runtime writes the present into the other buffer set, as in Generate).
//
// Serve holds the engine's run lock for its whole life: Generate, Warmup and Unload wait for it
// to return (they share the loaded model). docs/engine.md ("Continuous batching") says what is
// exact and what is not.
func (e *Engine) Serve(ctx context.Context, opts sdk.ServeOptions, in <-chan sdk.ServeRequest, emit func(sdk.ServeEvent) error) error {
	e.run.Lock()
	defer e.run.Unlock()
	e.mu.Lock()
	m, st := e.m, e.settings
	e.mu.Unlock()
	if m == nil {
		return fmt.Errorf("%w: serve: no model is loaded (call Load first)", sdk.ErrFailedPrecondition)
	}
	run, release, err := runOptions(ctx)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer release()
	s := &server{m: m, opts: opts, maxBatch: st.MaxBatchSize, emit: emit, run: run, live: map[string]*srow{}}
	return s.loop(ctx, in)
}

// srow is one request of a Serve call: a generate row plus what Serve tracks per request.
type srow struct {
	row
	d         sdk.Decoding
	slot      int    // its row in the running batch's cache (valid while it runs)
	batchSum  int64  // Σ running-batch size over the passes that produced its tokens
	pending   []byte // text bytes not yet reported (an incomplete character)
	cancelled bool
	shift     bool // its context shifts at this step boundary
}

// server is one Serve call's state.
type server struct {
	m        *loaded
	opts     sdk.ServeOptions
	maxBatch int
	emit     func(sdk.ServeEvent) error
	run      *ort.RunOptions

	// main holds the running batch: its cache is main.kv[cur], [b, kvHeads, total, headDim];
	// join holds the joiners' prefill (their cache lands in join.kv[1]).
	main, join arena
	cur, total int

	rows    []*srow // the running batch, rows[i].slot == i once laid out
	rr      []*row  // rows' generate rows, for fillDecode
	queue   []*srow // admitted, waiting to join (first come, first served)
	live    map[string]*srow
	seq     int
	relay   bool // rows left since the last layout
	smp     sampler
	places  []place
	joiners []*srow
}

// loop runs until in is closed and every request is done, ctx ends, or emit fails.
func (s *server) loop(ctx context.Context, in <-chan sdk.ServeRequest) error {
	open := true
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
	take:
		for open {
			var r sdk.ServeRequest
			var ok bool
			if len(s.rows) == 0 && len(s.queue) == 0 {
				select { // idle: wait
				case <-ctx.Done():
					return ctx.Err()
				case r, ok = <-in:
				}
			} else {
				select {
				case r, ok = <-in:
				default:
					break take
				}
			}
			if !ok {
				open = false
				break
			}
			if err := s.receive(r); err != nil {
				return err
			}
		}
		if len(s.rows) == 0 && len(s.queue) == 0 {
			if !open {
				return nil
			}
			continue
		}
		if err := s.step(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
	}
}

// receive handles one message from in: a cancel marks its request (dropped at the next step
// boundary; an id not running is ignored), a submit is checked, tokenized and queued — or
// reported at once as failed.
func (s *server) receive(r sdk.ServeRequest) error {
	now := clock.Mono()
	id := r.Prompt.ID
	if r.Cancel {
		if x := s.live[id]; x != nil {
			x.cancelled = true
		}
		return nil
	}
	index := s.seq
	s.seq++
	fail := func(err error) error {
		return s.emit(sdk.ServeEvent{Done: &sdk.RequestResult{ID: id, Index: index, StartMonoNS: now,
			FinishReason: "error", ErrorKind: "engine", Error: err.Error()}})
	}
	if s.live[id] != nil {
		return fail(fmt.Errorf("%w: request id %q is already running (ids must be unique among the requests not yet done)", sdk.ErrInvalidArgument, id))
	}
	req := sdk.GenerateRequest{Prompts: []sdk.Prompt{r.Prompt}, Decoding: r.Decoding}
	if err := checkRequest(req, 0); err != nil {
		return fail(err)
	}
	if r.Decoding.ReturnText && s.m.tok == nil {
		return fail(fmt.Errorf("%w: return_text: %s", sdk.ErrInvalidArgument, s.m.noTokenizer()))
	}
	rows, err := s.m.prepare(req, now)
	if err != nil {
		return fail(err)
	}
	x := &srow{row: *rows[0], d: r.Decoding}
	x.res.Index = index
	s.live[id] = x
	s.queue = append(s.queue, x)
	return nil
}

// step is one step boundary and the passes it runs: leave, context shift, join, decode.
func (s *server) step(ctx context.Context) error {
	m := s.m
	// Cancelled requests leave, running or queued.
	now := clock.Mono()
	kept := s.rows[:0]
	for _, x := range s.rows {
		if x.cancelled {
			s.relay = true
			if err := s.finish(x, "cancelled", now); err != nil {
				return err
			}
			continue
		}
		kept = append(kept, x)
	}
	s.rows = kept
	queue := s.queue[:0]
	for _, x := range s.queue {
		if x.cancelled {
			if err := s.finish(x, "cancelled", now); err != nil {
				return err
			}
			continue
		}
		queue = append(queue, x)
	}
	s.queue = queue

	// Joiners: rows whose next token would pass the context (re-prefilled from their last half
	// context, as Generate's context shift does), then queued requests while the batch has room.
	s.joiners = s.joiners[:0]
	kept = s.rows[:0]
	for _, x := range s.rows {
		if x.shift = s.total-x.pads+1 > m.context; x.shift {
			s.joiners = append(s.joiners, x)
			s.relay = true
			continue
		}
		kept = append(kept, x)
	}
	s.rows = kept
	room := len(s.queue)
	if s.maxBatch > 0 {
		room = min(room, max(0, s.maxBatch-len(s.rows)-len(s.joiners)))
	}
	s.joiners = append(s.joiners, s.queue[:room]...)
	s.queue = append(s.queue[:0], s.queue[room:]...)

	width := 0
	if len(s.joiners) > 0 {
		var err error
		if width, err = s.prefill(ctx); err != nil {
			return err
		}
	}
	if s.relay || len(s.joiners) > 0 {
		s.layout(width)
	}
	if len(s.rows) == 0 {
		return nil
	}
	return s.decode(ctx)
}

// prefill runs the joiners' prompts (a shifted row's last half context) in one pass, left-padded
// to the longest, gives each its next token and reports them; the joiners that finish on it are
// dropped. It returns the pass's width.
func (s *server) prefill(ctx context.Context) (int, error) {
	m := s.m
	keep := max(1, m.context/2)
	b := len(s.joiners)
	// A shifted row keeps its last half context; a new request its whole (truncated) prompt.
	toks := func(x *srow) []int64 {
		if x.shift {
			return x.hist[len(x.hist)-min(keep, len(x.hist)):]
		}
		return x.hist
	}
	width := 0
	for _, x := range s.joiners {
		width = max(width, len(toks(x)))
	}
	a := &s.join
	a.ids = growCap(a.ids, b*width, 0)
	a.mask = growCap(a.mask, b*width, 0)
	a.pos = growCap(a.pos, b*width, 0)
	a.logits = growCap(a.logits, b*width*m.vocab, 0)
	s.kvSets(a, 0, 1, 0)
	s.kvSets(a, 1, b*m.kvHeads*width*m.headDim, 0)
	for i, x := range s.joiners {
		t := toks(x)
		x.pads = width - len(t)
		base := i * width
		for j := 0; j < width; j++ {
			if j < x.pads {
				a.ids[base+j], a.mask[base+j], a.pos[base+j] = m.pad, 0, 1
				continue
			}
			a.ids[base+j], a.mask[base+j], a.pos[base+j] = t[j-x.pads], 1, int64(j-x.pads)
		}
	}
	if err := s.forward(ctx, a, b, width, width, 0); err != nil {
		err = s.failPass(s.joiners, err)
		s.joiners = s.joiners[:0]
		return 0, err
	}
	done, err := s.tokens(s.joiners, a.logits, width)
	if err != nil {
		return 0, err
	}
	if done > 0 {
		kept := s.joiners[:0]
		for _, x := range s.joiners {
			if x.active {
				kept = append(kept, x)
			}
		}
		s.joiners = kept
	}
	return width, nil
}

// place is where a row of the new layout comes from: row srcRow of a cache of srcT positions
// whose last real positions are the row's.
type place struct {
	src          [][]float32
	srcT, srcRow int
	real         int
}

// layout re-lays out the cache after rows left or joined: the running rows that stay (from the
// main cache), then the joiners (from the prefill's cache), each left-padded to the longest row.
// It writes into the main arena's other buffer set, which becomes the current one.
func (s *server) layout(width int) {
	m := s.m
	s.places = s.places[:0]
	for _, x := range s.rows {
		s.places = append(s.places, place{src: s.main.kv[s.cur], srcT: s.total, srcRow: x.slot, real: s.total - x.pads})
	}
	for i, x := range s.joiners {
		s.places = append(s.places, place{src: s.join.kv[1], srcT: width, srcRow: i, real: width - x.pads})
	}
	s.rows = append(s.rows, s.joiners...)
	s.joiners = s.joiners[:0]
	s.relay = false
	total := 0
	for _, p := range s.places {
		total = max(total, p.real)
	}
	H, D := m.kvHeads, m.headDim
	dst := 1 - s.cur
	s.kvSets(&s.main, dst, len(s.places)*H*total*D, len(s.places)*H*s.horizon(total)*D)
	for j := range s.main.kv[dst] {
		out := s.main.kv[dst][j]
		for i, p := range s.places {
			pads := total - p.real
			src := p.src[j]
			for h := 0; h < H; h++ {
				o := out[(i*H+h)*total*D : (i*H+h+1)*total*D]
				clear(o[:pads*D])
				from := ((p.srcRow*H+h)*p.srcT + p.srcT - p.real) * D
				copy(o[pads*D:], src[from:from+p.real*D])
			}
		}
	}
	s.cur, s.total = dst, total
	s.rr = s.rr[:0]
	for i, x := range s.rows {
		x.slot, x.pads = i, total-s.places[i].real
		s.rr = append(s.rr, &x.row)
	}
}

// decode runs one pass over the running batch: one new token per row.
func (s *server) decode(ctx context.Context) error {
	m := s.m
	b := len(s.rows)
	total := s.total + 1
	a := &s.main
	horizon := s.horizon(total)
	a.ids = growCap(a.ids, b, 0)
	a.pos = growCap(a.pos, b, 0)
	a.mask = growCap(a.mask, b*total, b*horizon)
	a.logits = growCap(a.logits, b*m.vocab, 0)
	s.kvSets(a, 1-s.cur, b*m.kvHeads*total*m.headDim, b*m.kvHeads*horizon*m.headDim)
	fillDecode(a, s.rr, total)
	if err := s.forward(ctx, a, b, 1, total, s.cur); err != nil {
		err = s.failPass(s.rows, err)
		s.rows, s.rr, s.total = s.rows[:0], s.rr[:0], 0
		return err
	}
	s.cur, s.total = 1-s.cur, total
	done, err := s.tokens(s.rows, a.logits, 1)
	if err != nil {
		return err
	}
	if done > 0 {
		kept := s.rows[:0]
		for _, x := range s.rows {
			if x.active {
				kept = append(kept, x)
			}
		}
		s.rows = kept
		s.relay = true
	}
	return nil
}

// fillDecode lays out one new token per row in a for a cache of total positions: the token id,
// its position after the row's left padding, and the mask (0 on the padding).
func fillDecode(a *arena, rows []*row, total int) {
	for i, r := range rows {
		a.ids[i] = r.hist[len(r.hist)-1]
		a.pos[i] = int64(total - r.pads - 1)
		mask := a.mask[i*total : (i+1)*total]
		for j := range mask {
			if j < r.pads {
				mask[j] = 0
			} else {
				mask[j] = 1
			}
		}
	}
}

// forward runs one pass on arena a (the model's own arena is swapped out for it: Serve holds
// the run lock, so nothing else uses the model meanwhile).
func (s *server) forward(ctx context.Context, a *arena, b, n, total, cur int) error {
	m := s.m
	saved := m.buf
	m.buf = *a
	err := m.forward(s.run, b, n, total, cur)
	*a, m.buf = m.buf, saved
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// failPass reports every request of a pass that failed as failed ("engine"), so that Serve goes
// on with the others; a cancelled context is returned instead.
func (s *server) failPass(rows []*srow, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	now := clock.Mono()
	for _, x := range rows {
		x.res.ErrorKind, x.res.Error = "engine", fmt.Sprintf("forward pass of %d requests: %v", len(rows), err)
		if err := s.finish(x, "error", now); err != nil {
			return err
		}
	}
	return nil
}

// tokens takes each row's next token from the pass's logits ([len(rows), n, vocab], the last
// position), reports the pass (a Step event when asked for) and finishes the rows that stop on
// it. It returns how many finished.
func (s *server) tokens(rows []*srow, logits []float32, n int) (int, error) {
	m := s.m
	for i, x := range rows {
		lg := logits[(i*n+n-1)*m.vocab : (i*n+n)*m.vocab]
		var id int32
		if x.d.Greedy {
			id = argmax(lg)
		} else {
			s.smp.temperature, s.smp.topK, s.smp.topP = x.d.Temperature, x.d.TopK, x.d.TopP
			id = s.smp.sample(lg, x.rng)
		}
		x.res.OutputIDs = append(x.res.OutputIDs, id)
		x.hist = append(x.hist, int64(id))
	}
	now := clock.Mono()
	var step *sdk.ServeStep
	if s.opts.StepEvents {
		step = &sdk.ServeStep{MonoNS: now, BatchSize: len(rows), Tokens: make([]sdk.StepToken, len(rows))}
	}
	done := 0
	for i, x := range rows {
		x.res.TokenMonoNS = append(x.res.TokenMonoNS, now)
		x.batchSum += int64(len(rows))
		id := x.res.OutputIDs[len(x.res.OutputIDs)-1]
		reason := ""
		switch {
		case m.eos[id] && !x.d.IgnoreEOS:
			reason = "eos"
		case len(x.res.OutputIDs) >= x.d.MaxNewTokens:
			reason = "length"
		}
		if step != nil {
			step.Tokens[i] = sdk.StepToken{ID: x.res.ID, TokenID: id}
			if x.d.ReturnText {
				step.Tokens[i].Text = x.delta(m.tok, id, reason)
			}
		}
		if reason != "" {
			x.res.FinishReason = reason
			x.active = false
			done++
		}
	}
	if step != nil {
		if err := s.emit(sdk.ServeEvent{Step: step}); err != nil {
			return done, err
		}
	}
	if done > 0 {
		for _, x := range rows {
			if !x.active {
				if err := s.finish(x, x.res.FinishReason, now); err != nil {
					return done, err
				}
			}
		}
	}
	return done, nil
}

// delta is the text token id adds to x's output: the bytes so far that form whole characters
// (or can never become one); a trailing incomplete UTF-8 sequence is held back until a later
// token completes it or the request finishes (reason set). An EOS it stops on adds no text.
// The deltas concatenate to the finished request's Text.
func (x *srow) delta(tok *tokenizer.Tokenizer, id int32, reason string) string {
	if reason != "eos" {
		x.pending, _ = tok.AppendBytes(x.pending, id)
	}
	cut := len(x.pending)
	if reason == "" {
		cut = completeUTF8(x.pending)
	}
	if cut == 0 {
		return ""
	}
	out := tokenizer.ValidUTF8(x.pending[:cut])
	x.pending = append(x.pending[:0], x.pending[cut:]...)
	return out
}

// completeUTF8 returns the length of b's longest prefix that does not end inside a UTF-8
// sequence that a later byte could still complete. Decoding stops and restarts cleanly there:
// at a lead byte the decoder is always between characters.
func completeUTF8(b []byte) int {
	for k := len(b) - 1; k >= 0 && k >= len(b)-3; k-- {
		if b[k] >= 0xC0 { // a lead byte (or an invalid byte, which FullRune calls complete)
			if !utf8.FullRune(b[k:]) {
				return k
			}
			return len(b)
		}
		if b[k] < 0x80 {
			return len(b)
		}
	}
	return len(b)
}

// finish reports x as done for reason (its FinishReason), with its text when asked for.
func (s *server) finish(x *srow, reason string, now int64) error {
	x.active = false
	x.res.FinishReason = reason
	if n := len(x.res.OutputIDs); n > 0 {
		x.res.MeanBatch = float64(x.batchSum) / float64(n)
	}
	if x.d.ReturnText && reason != "error" && len(x.res.OutputIDs) > 0 {
		text, err := s.m.text(x.res)
		if err != nil {
			x.res.FinishReason, x.res.ErrorKind, x.res.Error = "error", "engine", err.Error()
		}
		x.res.Text = text
	}
	if s.live[x.res.ID] == x {
		delete(s.live, x.res.ID)
	}
	res := x.res
	return s.emit(sdk.ServeEvent{Done: &res})
}

// horizon is the cache length the running batch reaches, from total positions now, if no
// request joins or leaves before the last one finishes (at most the context, and at most 512
// positions ahead: a long context grows by doubling instead of being reserved whole): what
// buffers are sized for when they must grow, so that a steady decode rarely reallocates.
func (s *server) horizon(total int) int {
	more := 0
	for _, x := range s.rows {
		more = max(more, x.d.MaxNewTokens-len(x.res.OutputIDs))
	}
	return min(s.m.context, total+min(more, 512))
}

// kvSets makes buffer set set of arena a hold n floats per cache tensor (room for hint when it
// must grow); a set that grows loses its contents (callers grow only the set a pass or a layout
// writes).
func (s *server) kvSets(a *arena, set, n, hint int) {
	if len(a.kv[set]) != 2*s.m.layers {
		a.kv[set] = make([][]float32, 2*s.m.layers)
	}
	for j := range a.kv[set] {
		a.kv[set][j] = growCap(a.kv[set][j], max(n, 1), hint)
	}
	if a.in == nil {
		a.in = make([]ort.Value, 0, len(s.m.inputs))
		a.out = make([]ort.Value, 0, len(s.m.outputs))
	}
}

// growCap returns s with length n, reallocated (contents lost) when its capacity is short, with
// room for hint and at least twice the old capacity, so that buffers growing a little every step
// reallocate rarely.
func growCap[T any](s []T, n, hint int) []T {
	if cap(s) < n {
		return make([]T, n, max(n, 2*cap(s), hint))
	}
	return s[:n]
}
