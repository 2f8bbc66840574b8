package serve

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/clock"
)

// fakeTokenizer maps each byte to its value as a token id (vocabulary 256).
type fakeTokenizer struct{}

func (fakeTokenizer) Tokenize(_ context.Context, _ string, texts []string) ([][]int32, error) {
	out := make([][]int32, len(texts))
	for i, s := range texts {
		for _, b := range []byte(s) {
			out[i] = append(out[i], int32(b))
		}
	}
	return out, nil
}

func (fakeTokenizer) Detokenize(_ context.Context, _ string, ids [][]int32) ([]string, error) {
	out := make([]string, len(ids))
	for i, seq := range ids {
		b := make([]byte, len(seq))
		for k, id := range seq {
			b[k] = byte(id)
		}
		out[i] = string(b)
	}
	return out, nil
}

// fakeEngine generates, for a prompt ending in id p, the tokens 'a'+(p+k)%26 (k = 1, 2, …); a
// prompt starting with 'E' stops on EOS (id 0) after two tokens unless IgnoreEOS. With
// continuous it implements Serve (one token per running request per step), else Serve answers
// ErrUnimplemented and requests run through Generate.
type fakeEngine struct {
	continuous bool
	// waitFor, when > 0, holds the first step until that many requests were received.
	waitFor int
	// stepDelay paces the steps (only so that a cancel can land mid-request).
	stepDelay time.Duration
	// wake, closed, ends a wait for waitFor requests.
	wake chan struct{}

	mu         sync.Mutex
	received   int
	cancelled  []string
	generates  []int // batch sizes of the Generate calls
	maxRunning int
	failWith   error // Serve fails with it once a request arrives
}

func (f *fakeEngine) Load(context.Context, sdk.LoadRequest) (*sdk.LoadResult, error) {
	return &sdk.LoadResult{}, nil
}
func (f *fakeEngine) Warmup(context.Context, sdk.WarmupRequest) ([]sdk.BatchTiming, error) {
	return nil, nil
}
func (f *fakeEngine) Unload(context.Context) error { return nil }

func (f *fakeEngine) token(p sdk.Prompt, k int) (int32, bool) {
	last := p.IDs[len(p.IDs)-1]
	if p.IDs[0] == 'E' && k == 2 {
		return 0, true
	}
	return 'a' + (last+int32(k))%26, false
}

type fakeRun struct {
	req  sdk.ServeRequest
	res  sdk.RequestResult
	done bool
}

func (f *fakeEngine) step(runs []*fakeRun, now int64) (toks []sdk.StepToken) {
	for _, r := range runs {
		k := len(r.res.OutputIDs) + 1
		id, eos := f.token(r.req.Prompt, k)
		if eos && r.req.Decoding.IgnoreEOS {
			id, eos = 'z', false
		}
		r.res.OutputIDs = append(r.res.OutputIDs, id)
		r.res.TokenMonoNS = append(r.res.TokenMonoNS, now)
		text := ""
		if !eos {
			text = string(rune(id))
			r.res.Text += text
		}
		toks = append(toks, sdk.StepToken{ID: r.req.Prompt.ID, TokenID: id, Text: text})
		switch {
		case eos:
			r.res.FinishReason, r.done = "eos", true
		case len(r.res.OutputIDs) >= r.req.Decoding.MaxNewTokens:
			r.res.FinishReason, r.done = "length", true
		}
	}
	return toks
}

func (f *fakeEngine) Serve(ctx context.Context, opts sdk.ServeOptions, in <-chan sdk.ServeRequest, emit func(sdk.ServeEvent) error) error {
	if !f.continuous {
		return fmt.Errorf("fake: %w", sdk.ErrUnimplemented)
	}
	var runs []*fakeRun
	open := true
	add := func(r sdk.ServeRequest) error {
		if r.Cancel {
			f.mu.Lock()
			f.cancelled = append(f.cancelled, r.Prompt.ID)
			f.mu.Unlock()
			for i, x := range runs {
				if x.req.Prompt.ID == r.Prompt.ID {
					x.res.FinishReason = "cancelled"
					runs = append(runs[:i], runs[i+1:]...)
					return emit(sdk.ServeEvent{Done: &x.res})
				}
			}
			return nil
		}
		f.mu.Lock()
		f.received++
		fail := f.failWith
		f.mu.Unlock()
		if fail != nil {
			return fail
		}
		runs = append(runs, &fakeRun{req: r, res: sdk.RequestResult{ID: r.Prompt.ID, InputTokens: len(r.Prompt.IDs), StartMonoNS: clock.Mono()}})
		return nil
	}
	for {
		// Take every request waiting; block when nothing runs (or the first step waits).
		for open {
			f.mu.Lock()
			hold := f.waitFor > 0 && f.received < f.waitFor
			f.mu.Unlock()
			block := len(runs) == 0 || hold
			var r sdk.ServeRequest
			var ok bool
			if block {
				woken := false
				select {
				case r, ok = <-in:
				case <-f.wake:
					woken = true
				case <-ctx.Done():
					return ctx.Err()
				}
				if woken {
					break
				}
			} else {
				idle := false
				select {
				case r, ok = <-in:
				default:
					idle = true
				}
				if idle {
					break
				}
			}
			if !ok {
				open = false
				break
			}
			if err := add(r); err != nil {
				return err
			}
		}
		if len(runs) == 0 {
			if !open {
				return nil
			}
			continue
		}
		f.mu.Lock()
		f.maxRunning = max(f.maxRunning, len(runs))
		f.mu.Unlock()
		if f.stepDelay > 0 {
			time.Sleep(f.stepDelay)
		}
		now := clock.Mono()
		toks := f.step(runs, now)
		if opts.StepEvents {
			if err := emit(sdk.ServeEvent{Step: &sdk.ServeStep{MonoNS: now, BatchSize: len(runs), Tokens: toks}}); err != nil {
				return err
			}
		}
		rest := runs[:0]
		for _, r := range runs {
			if r.done {
				if err := emit(sdk.ServeEvent{Done: &r.res}); err != nil {
					return err
				}
			} else {
				rest = append(rest, r)
			}
		}
		runs = rest
	}
}

func (f *fakeEngine) Generate(ctx context.Context, req sdk.GenerateRequest, emit func(sdk.RequestResult) error) (*sdk.BatchTiming, error) {
	f.mu.Lock()
	f.generates = append(f.generates, len(req.Prompts))
	f.mu.Unlock()
	var runs []*fakeRun
	for i, p := range req.Prompts {
		runs = append(runs, &fakeRun{req: sdk.ServeRequest{Prompt: p, Decoding: req.Decoding}, res: sdk.RequestResult{ID: p.ID, Index: i, InputTokens: len(p.IDs), StartMonoNS: clock.Mono()}})
	}
	for active := runs; len(active) > 0; {
		f.step(active, clock.Mono())
		rest := active[:0]
		for _, r := range active {
			if !r.done {
				rest = append(rest, r)
			}
		}
		active = rest
	}
	for _, r := range runs {
		if err := emit(r.res); err != nil {
			return nil, err
		}
	}
	return &sdk.BatchTiming{Requests: len(runs)}, nil
}

var errEngineGone = errors.New("the engine plugin exited")
