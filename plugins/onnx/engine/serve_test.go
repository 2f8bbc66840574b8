package engine

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/lemctl/lemctl/plugins/onnx/tokenizer"
	"github.com/lemctl/lemctl/sdk"
)

// timed is a request the test sends into Serve once `at` forward passes have been reported
// (0: before Serve starts), so that requests join a running batch at known step boundaries.
type timed struct {
	at int
	r  sdk.ServeRequest
}

// served is what one Serve call reported.
type served struct {
	done  map[string]sdk.RequestResult
	order []string            // ids in the order of their Done events (duplicates kept)
	all   []sdk.RequestResult // every Done event, in order
	steps []sdk.ServeStep
	err   error
}

// serveScript runs Serve with step events, sends each request when its step comes, closes in
// after the last one, and returns what Serve reported. A hang fails the test.
func serveScript(t *testing.T, e sdk.ContinuousEngine, script []timed, onStep func(n int) bool) served {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // hang guard only
	defer cancel()
	in := make(chan sdk.ServeRequest, len(script)+1)
	sent := 0
	send := func(at int) {
		for _, s := range script {
			if s.at == at {
				in <- s.r
				sent++
			}
		}
		if sent == len(script) && at >= 0 {
			close(in)
			sent = -1 << 30 // closed
		}
	}
	send(0)
	var out served
	out.done = map[string]sdk.RequestResult{}
	out.err = e.Serve(ctx, sdk.ServeOptions{StepEvents: true}, in, func(ev sdk.ServeEvent) error {
		switch {
		case ev.Step != nil:
			out.steps = append(out.steps, *ev.Step)
			if onStep != nil && !onStep(len(out.steps)) {
				cancel()
			}
			if sent >= 0 {
				send(len(out.steps))
			}
		case ev.Done != nil:
			out.done[ev.Done.ID] = *ev.Done
			out.order = append(out.order, ev.Done.ID)
			out.all = append(out.all, *ev.Done)
		}
		return nil
	})
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("Serve hung: %d steps, %d done", len(out.steps), len(out.done))
	}
	return out
}

func submit(id string, ids []int32, d sdk.Decoding) sdk.ServeRequest {
	return sdk.ServeRequest{Prompt: sdk.Prompt{ID: id, IDs: ids}, Decoding: d}
}

func seqIDs(n, from int) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(from + 7*i)
	}
	return out
}

// TestServeEqualsGenerateAlone: requests sent into Serve at different steps — joining a running
// batch shorter and longer than themselves, together and alone, leaving at different steps, one
// finishing on its prefill, one shifting its context, one sampling with its own seed — each get
// exactly the ids (and finish reason, input count, truncation) Generate gives them alone; the
// step events carry every token once, in order; the running batch is larger than one on average.
func TestServeEqualsGenerateAlone(t *testing.T) {
	for _, p := range presets {
		t.Run(p, func(t *testing.T) {
			e := load(t, resolve(t, "synthetic:"+p, ""), Settings{})
			e.mu.Lock()
			ctxLen := e.m.context
			e.mu.Unlock()
			sampled := sdk.Decoding{MaxNewTokens: 12, Temperature: 1, TopK: 40, TopP: 0.95, Seed: 7}
			script := []timed{
				{0, submit("a", prompts[2], greedy(30))},
				{3, submit("b", seqIDs(20, 300), greedy(10))},                              // longer than the batch: the others shift right
				{3, submit("c", prompts[0], sdk.Decoding{MaxNewTokens: 25, Greedy: true})}, // joins with b; stops at EOS if it comes
				{8, submit("d", prompts[1], sampled)},
				{10, submit("e", seqIDs(3, 900), greedy(1))}, // done on its prefill
				// Near the context: its context shifts while the others run.
				{12, submit("f", seqIDs(ctxLen-4, 1000), sdk.Decoding{MaxNewTokens: 14, Greedy: true, IgnoreEOS: true, MaxInputTokens: ctxLen})},
				{30, submit("g", prompts[0], greedy(6))}, // after a and b left
			}
			out := serveScript(t, e, script, nil)
			if out.err != nil {
				t.Fatalf("serve: %v", out.err)
			}
			perID := map[string][]int32{}
			sumBatch := 0
			for _, st := range out.steps {
				sumBatch += st.BatchSize
				if st.BatchSize != len(st.Tokens) {
					t.Errorf("step of batch %d carries %d tokens", st.BatchSize, len(st.Tokens))
				}
				for _, tk := range st.Tokens {
					perID[tk.ID] = append(perID[tk.ID], tk.TokenID)
				}
			}
			if mean := float64(sumBatch) / float64(len(out.steps)); mean <= 1 {
				t.Errorf("mean batch over %d passes = %.2f, want > 1 (the requests overlap)", len(out.steps), mean)
			}
			overlapped := false
			for _, s := range script {
				id := s.r.Prompt.ID
				got, ok := out.done[id]
				if !ok {
					t.Errorf("%s: no Done event", id)
					continue
				}
				alone, _, _ := collect(t, e, sdk.GenerateRequest{Prompts: []sdk.Prompt{s.r.Prompt}, Decoding: s.r.Decoding})
				w := alone[0]
				if !slices.Equal(got.OutputIDs, w.OutputIDs) || got.FinishReason != w.FinishReason || got.InputTokens != w.InputTokens || got.Truncated != w.Truncated {
					t.Errorf("%s: serve %v (%s, %d in, truncated %v), alone %v (%s, %d in, truncated %v)", id, got.OutputIDs, got.FinishReason, got.InputTokens, got.Truncated, w.OutputIDs, w.FinishReason, w.InputTokens, w.Truncated)
				}
				if !slices.Equal(perID[id], got.OutputIDs) {
					t.Errorf("%s: step events carried %v, Done %v", id, perID[id], got.OutputIDs)
				}
				if len(got.TokenMonoNS) != len(got.OutputIDs) || got.TokenMonoNS[0] < got.StartMonoNS || !slices.IsSorted(got.TokenMonoNS) {
					t.Errorf("%s: token times %v, start %d", id, got.TokenMonoNS, got.StartMonoNS)
				}
				if got.MeanBatch < 1 {
					t.Errorf("%s: mean batch %g", id, got.MeanBatch)
				}
				if got.MeanBatch > 1 {
					overlapped = true
				}
			}
			if !overlapped {
				t.Error("no request ran in a batch larger than one")
			}
			if f := out.done["f"]; f.InputTokens != ctxLen-4 || len(f.OutputIDs) != 14 {
				t.Errorf("f: %d input tokens, %d output, want %d and 14 (a context shift on the way)", f.InputTokens, len(f.OutputIDs), ctxLen-4)
			}
		})
	}
}

// TestServeCancel: a cancel drops its request at the next step boundary with the tokens it has
// ("cancelled"); a queued request can be cancelled too, an unknown id is ignored, and the others
// go on unchanged.
func TestServeCancel(t *testing.T) {
	s := DefaultSettings()
	s.MaxBatchSize = 2 // "q" waits in the queue
	e := load(t, resolve(t, "synthetic:gpt2-tiny", ""), s)
	script := []timed{
		{0, submit("long", prompts[0], greedy(100))},
		{0, submit("b", prompts[1], greedy(10))},
		{0, submit("q", prompts[2], greedy(10))},
		{2, sdk.ServeRequest{Prompt: sdk.Prompt{ID: "q"}, Cancel: true}},
		{2, sdk.ServeRequest{Prompt: sdk.Prompt{ID: "nobody"}, Cancel: true}},
		{4, sdk.ServeRequest{Prompt: sdk.Prompt{ID: "long"}, Cancel: true}},
	}
	out := serveScript(t, e, script, nil)
	if out.err != nil {
		t.Fatal(out.err)
	}
	if l := out.done["long"]; l.FinishReason != "cancelled" || len(l.OutputIDs) < 4 || len(l.OutputIDs) > 5 || len(l.TokenMonoNS) != len(l.OutputIDs) {
		t.Errorf("long: %s with %d tokens, want cancelled after 4-5", l.FinishReason, len(l.OutputIDs))
	}
	if q := out.done["q"]; q.FinishReason != "cancelled" || len(q.OutputIDs) != 0 {
		t.Errorf("queued q: %s with %d tokens, want cancelled before any", q.FinishReason, len(q.OutputIDs))
	}
	if _, ok := out.done["nobody"]; ok || len(out.done) != 3 {
		t.Errorf("done %v: want long, b, q only", out.order)
	}
	alone, _, _ := collect(t, e, sdk.GenerateRequest{Prompts: idPrompts(prompts[1]), Decoding: greedy(10)})
	if b := out.done["b"]; !slices.Equal(b.OutputIDs, alone[0].OutputIDs) || b.FinishReason != "length" {
		t.Errorf("b: %v (%s), alone %v", b.OutputIDs, b.FinishReason, alone[0].OutputIDs)
	}
}

// TestServeTextDeltas: with step events, the text deltas of a request concatenate to its full
// text, which equals Generate's.
func TestServeTextDeltas(t *testing.T) {
	e := load(t, resolve(t, "synthetic:gpt2-tiny", ""), Settings{})
	d := sdk.Decoding{MaxNewTokens: 20, Greedy: true, IgnoreEOS: true, ReturnText: true}
	texts := map[string]string{"x": "Hello, my name is", "y": "Ünïcödé ☃ 日本語 🙂", "z": "I"}
	var script []timed
	for i, id := range []string{"x", "y", "z"} {
		script = append(script, timed{2 * i, sdk.ServeRequest{Prompt: sdk.Prompt{ID: id, Text: texts[id]}, Decoding: d}})
	}
	out := serveScript(t, e, script, nil)
	if out.err != nil {
		t.Fatal(out.err)
	}
	joined := map[string]string{}
	for _, st := range out.steps {
		for _, tk := range st.Tokens {
			if !utf8.ValidString(tk.Text) {
				t.Errorf("%s: delta %q is not valid UTF-8", tk.ID, tk.Text)
			}
			joined[tk.ID] += tk.Text
		}
	}
	for id, text := range texts {
		got := out.done[id]
		alone, _, _ := collect(t, e, sdk.GenerateRequest{Prompts: []sdk.Prompt{{ID: id, Text: text}}, Decoding: d})
		if got.Text == "" || got.Text != alone[0].Text || joined[id] != got.Text {
			t.Errorf("%s: deltas %q, Done text %q, Generate's %q", id, joined[id], got.Text, alone[0].Text)
		}
	}
}

// TestTextDeltaNeverBreaksUTF8 feeds byte-level tokens one by one: every delta is whole
// characters (no U+FFFD for input that is valid UTF-8, split anywhere), and the deltas always
// concatenate to the decoded text — invalid bytes included.
func TestTextDeltaNeverBreaksUTF8(t *testing.T) {
	e := load(t, resolve(t, "synthetic:gpt2-tiny", ""), Settings{})
	tok := e.m.tok
	byteID := map[byte]int32{}
	for id := int32(0); int(id) < tok.VocabSize(); id++ {
		if b, err := tok.DecodeBytes([]int32{id}); err == nil && len(b) == 1 {
			byteID[b[0]] = id
		}
	}
	if len(byteID) != 256 {
		t.Fatalf("%d single-byte tokens, want 256", len(byteID))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	valid := []string{"é", "☃", "日本語", "🙂", "a", " ", "Ü"}
	for trial := 0; trial < 300; trial++ {
		var raw []byte
		broken := trial%3 == 0
		for len(raw) < 20 {
			if broken && rng.IntN(4) == 0 {
				raw = append(raw, byte(0x80+rng.IntN(128))) // a stray continuation or lead byte
				continue
			}
			raw = append(raw, valid[rng.IntN(len(valid))]...)
		}
		// Tokens: single bytes, or the tokenizer's own multi-byte tokens.
		var ids []int32
		if trial%2 == 0 {
			for _, c := range raw {
				ids = append(ids, byteID[c])
			}
		} else if !broken {
			ids = tok.Encode(string(raw))
		} else {
			continue
		}
		x := &srow{}
		var joined strings.Builder
		for i, id := range ids {
			reason := ""
			if i == len(ids)-1 {
				reason = "length"
			}
			d := x.delta(tok, id, reason)
			if !broken && strings.ContainsRune(d, utf8.RuneError) {
				t.Fatalf("trial %d: delta %q of valid text %q breaks a character", trial, d, raw)
			}
			joined.WriteString(d)
		}
		want, _ := tok.Decode(ids)
		if joined.String() != want || want != tokenizer.ValidUTF8(raw) {
			t.Fatalf("trial %d: deltas %q, decode %q", trial, joined.String(), want)
		}
	}
}

// TestServeEnds: closing in ends Serve once the running requests are done (nil); cancelling
// ctx ends it promptly, mid-generation or idle, with ctx's error; the engine serves Generate
// afterwards.
func TestServeEnds(t *testing.T) {
	e := load(t, resolve(t, "synthetic:gpt2-tiny", ""), Settings{})
	t.Run("close", func(t *testing.T) {
		out := serveScript(t, e, []timed{{0, submit("a", prompts[0], greedy(15))}, {0, submit("b", prompts[1], greedy(9))}}, nil)
		if out.err != nil || len(out.done["a"].OutputIDs) != 15 || len(out.done["b"].OutputIDs) != 9 {
			t.Errorf("serve: %v; a %d tokens, b %d", out.err, len(out.done["a"].OutputIDs), len(out.done["b"].OutputIDs))
		}
	})
	t.Run("cancel while generating", func(t *testing.T) {
		out := serveScript(t, e, []timed{{0, submit("a", prompts[0], greedy(1<<20))}}, func(n int) bool { return n < 10 })
		if !errors.Is(out.err, context.Canceled) || len(out.done) != 0 || len(out.steps) > 11 {
			t.Errorf("serve: %v after %d steps, %d done; want context.Canceled at once", out.err, len(out.steps), len(out.done))
		}
	})
	t.Run("cancel while idle", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		in := make(chan sdk.ServeRequest) // never sent to, never closed
		res := make(chan error, 1)
		go func() {
			res <- e.Serve(ctx, sdk.ServeOptions{}, in, func(sdk.ServeEvent) error { return nil })
		}()
		cancel()
		select {
		case err := <-res:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("idle serve: %v", err)
			}
		case <-time.After(time.Minute): // hang guard
			t.Fatal("Serve did not return after its context was cancelled")
		}
	})
	t.Run("emit error", func(t *testing.T) {
		stop := errors.New("stop")
		in := make(chan sdk.ServeRequest, 1)
		in <- submit("a", prompts[0], greedy(50))
		err := e.Serve(context.Background(), sdk.ServeOptions{StepEvents: true}, in, func(sdk.ServeEvent) error { return stop })
		if !errors.Is(err, stop) {
			t.Errorf("serve: %v, want the emit error", err)
		}
	})
	collect(t, e, sdk.GenerateRequest{Prompts: idPrompts(prompts[2]), Decoding: greedy(2)})
}

// TestServeBadInput: a bad request fails alone ("error", kind "engine", a message saying
// why); Serve goes on serving the others.
func TestServeBadInput(t *testing.T) {
	a := resolve(t, "synthetic:gpt2-tiny", "")
	e := load(t, a, Settings{})
	script := []timed{
		{0, submit("a", prompts[0], greedy(12))},
		{2, submit("a", prompts[1], greedy(3))}, // a duplicate of a running id
		{2, submit("vocab", []int32{50257}, greedy(3))},
		{2, submit("negative", []int32{-1}, greedy(3))},
		{2, submit("empty", nil, greedy(3))},
		{2, submit("zero", prompts[1], sdk.Decoding{Greedy: true})},
		{3, submit("topp", prompts[1], sdk.Decoding{MaxNewTokens: 3, Temperature: 1})},
	}
	out := serveScript(t, e, script, nil)
	if out.err != nil {
		t.Fatal(out.err)
	}
	want := map[string]string{"a": "already running", "vocab": "outside the vocabulary", "negative": "outside the vocabulary", "empty": "neither text nor token ids", "zero": "max_new_tokens", "topp": "top_p"}
	failed := 0
	var got sdk.RequestResult
	for _, r := range out.all {
		if r.ID == "a" && r.FinishReason == "length" {
			got = r
			continue
		}
		failed++
		if r.FinishReason != "error" || r.ErrorKind != "engine" || !strings.Contains(r.Error, want[r.ID]) {
			t.Errorf("%s: %s %s %q", r.ID, r.FinishReason, r.ErrorKind, r.Error)
		}
	}
	if failed != 6 || len(out.all) != 7 {
		t.Errorf("Done order %v: want 6 failures and a", out.order)
	}
	alone, _, _ := collect(t, e, sdk.GenerateRequest{Prompts: idPrompts(prompts[0]), Decoding: greedy(12)})
	if !slices.Equal(got.OutputIDs, alone[0].OutputIDs) {
		t.Errorf("a: %v (%s), alone %v", got.OutputIDs, got.FinishReason, alone[0].OutputIDs)
	}

	t.Run("token ids only", func(t *testing.T) {
		ids := New()
		s := DefaultSettings()
		s.LibraryPath, _ = filepathOfORT()
		ids.SetSettings(s)
		if _, err := ids.Load(context.Background(), sdk.LoadRequest{Artifact: *a, Device: sdk.Device{Kind: "cpu", Index: -1}, Threads: 1, TokenIDsOnly: true}); err != nil {
			t.Fatal(err)
		}
		defer ids.Unload(context.Background())
		out := serveScript(t, ids, []timed{
			{0, sdk.ServeRequest{Prompt: sdk.Prompt{ID: "text", Text: "Hello"}, Decoding: greedy(2)}},
			{0, submit("return_text", prompts[0], sdk.Decoding{MaxNewTokens: 2, Greedy: true, ReturnText: true})},
			{0, submit("ok", prompts[0], greedy(2))},
		}, nil)
		for _, id := range []string{"text", "return_text"} {
			if r := out.done[id]; r.FinishReason != "error" || !strings.Contains(r.Error, "token_ids_only") {
				t.Errorf("%s: %s %q, want an error naming token_ids_only", id, r.FinishReason, r.Error)
			}
		}
		if r := out.done["ok"]; out.err != nil || len(r.OutputIDs) != 2 {
			t.Errorf("ok: %v, %+v", out.err, r)
		}
	})
	t.Run("before load", func(t *testing.T) {
		err := New().Serve(context.Background(), sdk.ServeOptions{}, make(chan sdk.ServeRequest), func(sdk.ServeEvent) error { return nil })
		if !errors.Is(err, sdk.ErrFailedPrecondition) {
			t.Errorf("serve before load: %v", err)
		}
	})
}

// TestServeStepAllocations: a Serve decode pass allocates no more than a Generate decode pass
// (whose allocations are ONNX Runtime's tensor headers): nothing per token, no buffer growth in a
// steady batch. Measured as the extra allocations of 40 tokens over 20, per extra pass.
func TestServeStepAllocations(t *testing.T) {
	e := load(t, resolve(t, "synthetic:gpt2-tiny", ""), Settings{})
	reqs := idPrompts(prompts...)
	mallocs := func(f func()) uint64 {
		var a, b runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&a)
		f()
		runtime.ReadMemStats(&b)
		return b.Mallocs - a.Mallocs
	}
	gen := func(n int) func() {
		return func() { collect(t, e, sdk.GenerateRequest{Prompts: reqs, Decoding: greedy(n)}) }
	}
	serve := func(n int) func() {
		return func() {
			in := make(chan sdk.ServeRequest, len(reqs))
			for _, p := range reqs {
				in <- sdk.ServeRequest{Prompt: p, Decoding: greedy(n)}
			}
			close(in)
			if err := e.Serve(context.Background(), sdk.ServeOptions{}, in, func(sdk.ServeEvent) error { return nil }); err != nil {
				t.Fatal(err)
			}
		}
	}
	gen(20)() // warm
	serve(20)()
	perPass := func(run func(int) func()) float64 {
		return (float64(mallocs(run(60))) - float64(mallocs(run(20)))) / 40
	}
	g, s := perPass(gen), perPass(serve)
	t.Logf("allocations per decode pass: Generate %.1f, Serve %.1f (batch %d)", g, s, len(reqs))
	if s > g+1 {
		t.Errorf("a Serve decode pass allocates %.1f times, Generate's %.1f", s, g)
	}
}

// TestServeExcludesGenerate: a Generate called while Serve runs waits for Serve to return (they
// share the loaded model's buffers), then runs normally.
func TestServeExcludesGenerate(t *testing.T) {
	e := load(t, resolve(t, "synthetic:gpt2-tiny", ""), Settings{})
	var mu sync.Mutex
	var log []string
	note := func(s string) { mu.Lock(); log = append(log, s); mu.Unlock() }
	genDone := make(chan []int32, 1)
	started := false
	out := serveScript(t, e, []timed{{0, submit("a", prompts[0], greedy(40))}}, func(n int) bool {
		note("step") // under Serve's run lock
		if !started {
			started = true
			go func() {
				res, _, _ := collect(t, e, sdk.GenerateRequest{Prompts: idPrompts(prompts[1]), Decoding: greedy(5)})
				note("generate")
				genDone <- res[0].OutputIDs
			}()
		}
		return true
	})
	if out.err != nil || len(out.done["a"].OutputIDs) != 40 {
		t.Fatalf("serve: %v, %d tokens", out.err, len(out.done["a"].OutputIDs))
	}
	got := <-genDone
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 5 || len(log) != len(out.steps)+1 || log[len(log)-1] != "generate" {
		t.Errorf("generate gave %v and finished at %d of %d events: want it after Serve's last pass", got, slices.Index(log, "generate"), len(log))
	}
}
