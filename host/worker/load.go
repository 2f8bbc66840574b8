package worker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/lemctl/lemctl/host/energy"
	"github.com/lemctl/lemctl/host/launch"
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/clock"
)

// Open-loop loads (workload.arrival = "constant" or "poisson", docs/serving.md): every request
// is sent at its arrival time on a schedule drawn before the window, to the engine's Serve
// stream (continuous batching), with at most max_concurrency in flight; an arrival that finds
// them all busy waits, and its lateness is recorded.

// Paths of a load (results.Load.Path).
const (
	PathServe          = "serve"
	PathStaticFallback = "static_fallback"
)

// lateThresholdNS is the lateness from which a send counts as late (results.Load.LateSends):
// below it is the sender's own scheduling jitter.
const lateThresholdNS = int64(time.Millisecond)

// schedule returns the arrival times of n requests at rate requests/s, in ns after the first
// (which arrives at 0). constant: every 1/rate s. poisson: the gaps are exponential draws of a
// PCG stream seeded by (seed, rank), scaled so that they add up to exactly (n−1)/rate — a Poisson
// process conditioned on its n-th arrival, whose own rate is the target — so that the achieved
// rate measures only how late the sends were, not the sampling of the schedule.
func schedule(arrival string, n int, rate float64, seed uint64, rank int) []int64 {
	out := make([]int64, n)
	if n < 2 || rate <= 0 {
		return out
	}
	gaps := make([]float64, n-1)
	sum := 0.0
	rng := rand.New(rand.NewPCG(seed, uint64(rank)))
	for i := range gaps {
		g := 1.0
		if arrival == "poisson" {
			g = rng.ExpFloat64()
		}
		gaps[i] = g
		sum += g
	}
	scale := float64(n-1) / rate / sum * 1e9
	t := 0.0
	for i, g := range gaps {
		t += g * scale
		out[i+1] = int64(math.Round(t))
	}
	return out
}

// pacer is the clock of a load: the monotonic clock and a sleep in a real run. The lifecycle
// tests give a virtual one (a fake clock that a sleep advances), whose idle lets a fake engine
// finish work and whose emitted says how many results the engine has sent so far, so that the
// sender decides on every one of them (-1: unknown, a real run); sent is how many requests the
// sender has sent so far (over the repeats), which a virtual engine must have received before
// its clock moves.
type pacer interface {
	now() int64
	sleepUntil(ctx context.Context, t int64, sent int) error
	idle(ctx context.Context, sent int) error
	emitted() int
}

// realPacer is the monotonic clock.
type realPacer struct{}

func (realPacer) now() int64 { return clock.Mono() }

func (realPacer) sleepUntil(ctx context.Context, t int64, _ int) error {
	d := time.Duration(t - clock.Mono())
	if d <= 0 {
		return nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (realPacer) idle(context.Context, int) error { return nil }

func (realPacer) emitted() int { return -1 }

func (st *state) pacer() pacer {
	if st.w.pace != nil {
		return st.w.pace
	}
	return realPacer{}
}

// loadPrompt is the i-th request's prompt: the shard's prompts in turn, cycling; its id for the
// engine is unique among the requests of the repeat.
func loadPrompt(prompts []sdk.Prompt, i int) sdk.Prompt {
	p := prompts[i%len(prompts)]
	p.ID = fmt.Sprintf("%s#%d", p.ID, i)
	return p
}

// probeServe asks the engine for a Serve stream with nothing to run: nil when it batches
// continuously, an error matching sdk.ErrUnimplemented when it does not.
func (st *state) probeServe(ctx context.Context) error {
	ce, ok := st.engineC.Engine().(sdk.ContinuousEngine)
	if !ok {
		return fmt.Errorf("%w: the engine client has no Serve", sdk.ErrUnimplemented)
	}
	in := make(chan sdk.ServeRequest)
	close(in)
	defer st.tr.begin("engine.Serve")()
	return ce.Serve(ctx, sdk.ServeOptions{}, in, func(sdk.ServeEvent) error { return nil })
}

// decideServe settles, before the window, whether the load runs on the engine's Serve or falls
// back to static batches (finding serve_fallback).
func (st *state) decideServe(ctx context.Context) error {
	ld := st.w.Spec.Workload.Load
	if ld == nil {
		return nil
	}
	err := st.probeServe(ctx)
	switch {
	case err == nil:
		st.loadPath = PathServe
	case errors.Is(err, sdk.ErrUnimplemented):
		st.loadPath = PathStaticFallback
		st.findings = append(st.findings, results.Finding{Code: CodeServeFallback, Severity: results.SeverityWarning,
			Message: fmt.Sprintf("the engine plugin %s has no continuous batching (Serve): the %s arrivals ran as static batches of the requests waiting, up to workload.max_concurrency = %d each, so a request that arrives while a batch runs waits for it to end (its send lateness)",
				st.w.Spec.Engine.Name, ld.Arrival, ld.MaxConcurrency),
			Advice: "use an engine that implements Serve (docs/serving.md) for a continuous-batching load"})
	default:
		return fmt.Errorf("engine Serve: %w", err)
	}
	return nil
}

// Finding codes of a constant or poisson load (docs/serving.md).
const (
	CodeServeFallback          = "serve_fallback"
	CodeRequestsFailed         = "requests_failed"
	CodeRateOffTarget          = "rate_off_target"
	CodeEnergyNotAttributed    = "energy_not_attributed"
	CodeSteadyStateNotReached  = "steady_state_not_reached"
	rateTolerance              = 0.15
	phasesNotAttributedServing = "not attributed: under continuous batching one forward pass prefills some requests while it decodes others, so the energy of a pass cannot be split between the two"
)

// loadRepeat runs one repeat of the load: the schedule's requests, on the engine's Serve or in
// static batches, after the meters were marked. It returns the requests with their send and done
// times.
func (st *state) loadRepeat(ctx context.Context, m *measured, rep int, sessions []session) ([]results.Request, error) {
	ld := st.w.Spec.Workload.Load
	sched := schedule(ld.Arrival, ld.Requests, ld.Rate, ld.Seed, st.w.Spec.Rank)
	if err := st.mark(ctx, sessions, fmt.Sprintf("r%d/load", rep)); err != nil {
		return nil, err
	}
	if rep == 0 {
		st.pause(ctx, "window")
	}
	if st.loadPath == PathServe {
		return st.serveRepeat(ctx, rep, sched)
	}
	return st.fallbackRepeat(ctx, m, rep, sched, sessions)
}

func (st *state) mark(ctx context.Context, sessions []session, label string) error {
	for _, s := range sessions {
		if s.meter.client == nil {
			continue
		}
		if _, err := s.meter.api.Mark(ctx, s.id, label); err != nil {
			return fmt.Errorf("mark meter %s: %w", s.meter.ref.Name, err)
		}
	}
	return nil
}

// request turns an engine result into the result's request, timed from its send.
func request(r sdk.RequestResult, rep int, id string, scheduled, sent, received int64) results.Request {
	out := results.Request{ID: id, Repeat: rep, InputTokens: r.InputTokens, OutputTokens: r.Tokens(), StartMonoNS: r.StartMonoNS,
		TokenMonoNS: r.TokenMonoNS, OutputIDs: r.OutputIDs, FinishReason: r.FinishReason, Truncated: r.Truncated,
		ScheduledMonoNS: scheduled, SendMonoNS: sent, SendLateNS: max(0, sent-scheduled),
		ErrorKind: r.ErrorKind, Error: r.Error, TokenCount: r.TokenCount, ChunkMonoNS: r.ChunkMonoNS, MeanBatch: r.MeanBatch}
	if out.TokenCount == "" {
		out.TokenCount = "engine"
	}
	if out.FinishReason == "error" && out.ErrorKind == "" {
		out.ErrorKind = "engine"
	}
	if out.StartMonoNS == 0 {
		out.StartMonoNS = sent
	}
	// Done is the last token (or chunk) the engine timed; when it timed none (a failure), the
	// moment the host received the result.
	switch {
	case len(r.TokenMonoNS) > 0:
		out.DoneMonoNS = r.TokenMonoNS[len(r.TokenMonoNS)-1]
	case len(r.ChunkMonoNS) > 0:
		out.DoneMonoNS = r.ChunkMonoNS[len(r.ChunkMonoNS)-1]
	default:
		out.DoneMonoNS = received
	}
	out.DoneMonoNS = max(out.DoneMonoNS, sent)
	return out
}

// done is one result as the emit callback received it.
type done struct {
	r        sdk.RequestResult
	received int64
}

// serveRepeat sends the schedule's requests to the engine's Serve stream.
func (st *state) serveRepeat(ctx context.Context, rep int, sched []int64) ([]results.Request, error) {
	spec, pc := st.w.Spec, st.pacer()
	ld := spec.Workload.Load
	ce := st.engineC.Engine().(sdk.ContinuousEngine)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	n := len(sched)
	in := make(chan sdk.ServeRequest)
	dones := make(chan done, n)
	serveErr := make(chan error, 1)
	endCall := st.tr.begin("engine.Serve")
	defer endCall()
	go func() {
		err := ce.Serve(ctx, sdk.ServeOptions{StepEvents: false}, in, func(ev sdk.ServeEvent) error {
			if ev.Done != nil {
				st.tr.progress()
				dones <- done{r: *ev.Done, received: pc.now()}
			}
			return nil
		})
		if err == nil {
			err = errEnded
		}
		serveErr <- err
		cancel(err)
	}()
	index := make(map[string]int, n)
	reqs := make([]results.Request, n)
	sent := make([]int64, n)
	var received, outTokens int
	start := pc.now()
	// take records one result.
	take := func(d done) error {
		i, ok := index[d.r.ID]
		if !ok {
			return fmt.Errorf("engine Serve returned a result for %q, a request it was not sent or already returned", d.r.ID)
		}
		delete(index, d.r.ID)
		id := spec.Prompts[i%len(spec.Prompts)].ID
		reqs[i] = request(d.r, rep, id, start+sched[i], sent[i], d.received)
		received++
		outTokens += reqs[i].OutputTokens
		elapsed := float64(pc.now()-start) / 1e9
		st.w.Control.Progress(launch.Message{Phase: "measured", PromptsDone: received, PromptsTotal: n,
			TokensPerS: float64(outTokens) / math.Max(elapsed, 1e-9),
			Detail:     fmt.Sprintf("repeat %d/%d, %d in flight", rep+1, max(1, spec.Workload.Repeats), len(index))})
		return nil
	}
	// wait takes one result, blocking.
	wait := func() error {
		select {
		case d := <-dones:
			return take(d)
		case <-ctx.Done():
			// Serve ends (and ends ctx) only after its last result: take those still here first.
			select {
			case d := <-dones:
				return take(d)
			default:
			}
			return serveFailure(ctx, serveErr)
		}
	}
	// settle takes every result already here, and with a virtual pacer every one the engine sent.
	settle := func() error {
		for want := pc.emitted(); want >= 0 && st.loadReceived+received < want; {
			if err := wait(); err != nil {
				return err
			}
		}
		for {
			select {
			case d := <-dones:
				if err := take(d); err != nil {
					return err
				}
			default:
				return nil
			}
		}
	}
	// await blocks until at least one more result is in (a virtual pacer's engine finishes
	// its next request instead).
	await := func() error {
		if err := pc.idle(ctx, st.loadSent); err != nil {
			return err
		}
		if pc.emitted() < 0 {
			if err := wait(); err != nil {
				return err
			}
		}
		return settle()
	}
	for i := range sched {
		if err := pc.sleepUntil(ctx, start+sched[i], st.loadSent); err != nil {
			return nil, serveFailure(ctx, serveErr)
		}
		if err := settle(); err != nil {
			return nil, err
		}
		for len(index) >= ld.MaxConcurrency {
			if err := await(); err != nil {
				return nil, err
			}
		}
		p := loadPrompt(spec.Prompts, i)
		index[p.ID] = i
		sent[i] = pc.now()
		select {
		case in <- sdk.ServeRequest{Prompt: p, Decoding: spec.Workload.Decoding}:
		case <-ctx.Done():
			return nil, serveFailure(ctx, serveErr)
		}
		st.loadSent++
		st.tr.progress()
	}
	close(in)
	for received < n {
		if err := await(); err != nil {
			return nil, err
		}
	}
	if err := <-serveErr; !errors.Is(err, errEnded) {
		return nil, fmt.Errorf("engine Serve: %w", err)
	}
	st.loadReceived += received
	return reqs, nil
}

// errEnded is what the Serve goroutine reports when Serve returned nil.
var errEnded = errors.New("serve ended")

// serveFailure is the error that ended a serve repeat early: Serve's own, or ctx's.
func serveFailure(ctx context.Context, serveErr chan error) error {
	select {
	case err := <-serveErr:
		if errors.Is(err, errEnded) {
			return errors.New("engine Serve ended before it returned every request's result")
		}
		return fmt.Errorf("engine Serve: %w", err)
	default:
		return context.Cause(ctx)
	}
}

// fallbackRepeat runs the schedule on an engine without Serve: the requests that have arrived
// (up to max_concurrency) run as one static batch; when none is waiting the sender sleeps until
// the next arrival. Each batch is marked on the meters, and its prefill and decode are split as
// in a static run.
func (st *state) fallbackRepeat(ctx context.Context, m *measured, rep int, sched []int64, sessions []session) ([]results.Request, error) {
	spec, pc := st.w.Spec, st.pacer()
	ld := spec.Workload.Load
	n := len(sched)
	reqs := make([]results.Request, 0, n)
	start := pc.now()
	var outTokens int
	for i, b := 0, 0; i < n; b++ {
		if err := pc.sleepUntil(ctx, start+sched[i], st.loadSent); err != nil {
			return nil, err
		}
		now := pc.now()
		j := i
		for j < n && j-i < ld.MaxConcurrency && start+sched[j] <= now {
			j++
		}
		batch := make([]sdk.Prompt, 0, j-i)
		for k := i; k < j; k++ {
			batch = append(batch, loadPrompt(spec.Prompts, k))
		}
		if b > 0 {
			if err := st.mark(ctx, sessions, fmt.Sprintf("r%d/b%d", rep, b)); err != nil {
				return nil, err
			}
		}
		sent := pc.now()
		first := i
		bt, err := st.engine.Generate(ctx, sdk.GenerateRequest{Prompts: batch, Decoding: spec.Workload.Decoding}, func(r sdk.RequestResult) error {
			k := first + r.Index
			if r.Index < 0 || k >= j {
				return fmt.Errorf("engine Generate returned a result for index %d of a batch of %d", r.Index, j-first)
			}
			id := spec.Prompts[k%len(spec.Prompts)].ID
			reqs = append(reqs, request(r, rep, id, start+sched[k], sent, pc.now()))
			outTokens += r.Tokens()
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("generate batch %d of repeat %d: %w", b, rep+1, err)
		}
		m.prefill = append(m.prefill, energy.Interval{StartMonoNS: bt.StartMonoNS, EndMonoNS: bt.FirstTokenMonoNS})
		m.decode = append(m.decode, energy.Interval{StartMonoNS: bt.FirstTokenMonoNS, EndMonoNS: bt.EndMonoNS})
		i = j
		elapsed := float64(pc.now()-start) / 1e9
		st.w.Control.Progress(launch.Message{Phase: "measured", PromptsDone: len(reqs), PromptsTotal: n,
			TokensPerS: float64(outTokens) / math.Max(elapsed, 1e-9),
			Detail:     fmt.Sprintf("repeat %d/%d, static batch %d (no Serve)", rep+1, max(1, spec.Workload.Repeats), b+1)})
	}
	if len(reqs) != n {
		return nil, fmt.Errorf("engine Generate returned %d results for %d requests", len(reqs), n)
	}
	return reqs, nil
}

// repeatSpan is the repeat's window: its first send to its last done.
func repeatSpan(reqs []results.Request) energy.Interval {
	var iv energy.Interval
	for _, r := range reqs {
		if iv.StartMonoNS == 0 || r.SendMonoNS < iv.StartMonoNS {
			iv.StartMonoNS = r.SendMonoNS
		}
		iv.EndMonoNS = max(iv.EndMonoNS, r.DoneMonoNS)
	}
	return iv
}
