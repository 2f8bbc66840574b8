package worker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lemctl/lemctl/host/launch"
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/results/resultstest"
	"github.com/lemctl/lemctl/sdk"
)

// fakeServeEngine is fakeEngine with continuous batching on the fake clock: a request received
// at t produces its tokens at t + k × step (k = 1…outTokens) and is done at its last token; the
// virtual pacer finishes the pending requests as the clock moves. Every failEvery-th request
// received fails at once with kind http_5xx. It records how many requests were ever in flight at
// once as it saw them.
type fakeServeEngine struct {
	*fakeEngine
	failEvery int
	load      *sdk.LoadResult

	mu                 sync.Mutex
	emit               func(sdk.ServeEvent) error
	pending            []*pendingReq
	received, emitted  int
	inflight, peak     int
	serveCalls, served int
}

type pendingReq struct {
	id     string
	words  int
	start  int64
	finish int64
	tokens []int64
	fail   bool
}

func (e *fakeServeEngine) Load(ctx context.Context, req sdk.LoadRequest) (*sdk.LoadResult, error) {
	if e.load != nil {
		return e.load, nil
	}
	return e.fakeEngine.Load(ctx, req)
}

func (e *fakeServeEngine) Serve(ctx context.Context, _ sdk.ServeOptions, in <-chan sdk.ServeRequest, emit func(sdk.ServeEvent) error) error {
	e.mu.Lock()
	e.emit = emit
	e.serveCalls++
	e.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case r, ok := <-in:
			if !ok {
				for {
					e.mu.Lock()
					left := len(e.pending)
					if left == 0 {
						e.emit = nil
					}
					e.mu.Unlock()
					if left == 0 {
						return nil
					}
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(time.Millisecond):
					}
				}
			}
			e.mu.Lock()
			now := e.clk.now()
			e.received++
			p := &pendingReq{id: r.Prompt.ID, words: len(strings.Fields(r.Prompt.Text)), start: now}
			if e.failEvery > 0 && e.received%e.failEvery == 0 {
				p.fail, p.finish = true, now+int64(e.step)
			} else {
				for k := 1; k <= e.outTokens; k++ {
					p.tokens = append(p.tokens, now+int64(k)*int64(e.step))
				}
				p.finish = p.tokens[len(p.tokens)-1]
			}
			e.pending = append(e.pending, p)
			e.inflight++
			e.peak = max(e.peak, e.inflight)
			e.served++
			e.mu.Unlock()
		}
	}
}

// completeNext moves the clock to the earliest finish among the pending requests and emits that
// request's result; false when none is pending. Call with e.mu held.
func (e *fakeServeEngine) completeNext() bool {
	if len(e.pending) == 0 || e.emit == nil {
		return false
	}
	k := 0
	for i, p := range e.pending {
		if p.finish < e.pending[k].finish {
			k = i
		}
	}
	p := e.pending[k]
	e.pending = slices.Delete(e.pending, k, k+1)
	if now := e.clk.now(); p.finish > now {
		e.clk.advance(time.Duration(p.finish - now))
	}
	r := sdk.RequestResult{ID: p.id, InputTokens: p.words, StartMonoNS: p.start, MeanBatch: float64(e.inflight)}
	if p.fail {
		r.FinishReason, r.ErrorKind, r.Error = "error", "http_5xx", "HTTP 500 Internal Server Error"
	} else {
		r.FinishReason, r.OutputIDs, r.TokenMonoNS = "length", make([]int32, len(p.tokens)), p.tokens
	}
	e.inflight--
	e.emitted++
	_ = e.emit(sdk.ServeEvent{Done: &r})
	return true
}

func (e *fakeServeEngine) waitReceived(ctx context.Context, sent int) error {
	for {
		e.mu.Lock()
		got := e.received
		e.mu.Unlock()
		if got >= sent {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Microsecond):
		}
	}
}

// virtualPacer is the load's clock in the tests: the fake clock, which a sleep moves forward
// after the fake engine finished every request due by then. With no serving engine (the static
// fallback) it only moves the clock.
type virtualPacer struct {
	clk *fakeClock
	e   *fakeServeEngine
}

func (p virtualPacer) now() int64 { return p.clk.now() }

func (p virtualPacer) sleepUntil(ctx context.Context, t int64, sent int) error {
	if p.e != nil {
		if err := p.e.waitReceived(ctx, sent); err != nil {
			return err
		}
		p.e.mu.Lock()
		for len(p.e.pending) > 0 {
			next := slices.MinFunc(p.e.pending, func(a, b *pendingReq) int { return int(a.finish - b.finish) })
			if next.finish > t {
				break
			}
			p.e.completeNext()
		}
		p.e.mu.Unlock()
	}
	if now := p.clk.now(); t > now {
		p.clk.advance(time.Duration(t - now))
	}
	return nil
}

func (p virtualPacer) idle(ctx context.Context, sent int) error {
	if p.e == nil {
		return nil
	}
	if err := p.e.waitReceived(ctx, sent); err != nil {
		return err
	}
	p.e.mu.Lock()
	defer p.e.mu.Unlock()
	p.e.completeNext()
	return nil
}

func (p virtualPacer) emitted() int {
	if p.e == nil {
		return -1
	}
	p.e.mu.Lock()
	defer p.e.mu.Unlock()
	return p.e.emitted
}

// loadRig is newRig with a constant or poisson load of n requests at rate, at most maxC in
// flight, on the continuous-batching fake (serving) or on the static fake (the fallback).
func loadRig(t *testing.T, arrival string, n int, rate float64, maxC int, serving bool) (*rig, *fakeServeEngine) {
	r := newRig(t, 0, resultstest.NewMemory())
	r.spec.Workload.Load = &launch.LoadSpec{Arrival: arrival, Rate: rate, Requests: n, MaxConcurrency: maxC, Seed: 7}
	r.spec.Validity.MaxErrorRate = 0.05
	var se *fakeServeEngine
	if serving {
		se = &fakeServeEngine{fakeEngine: r.engine}
		r.serving = se
	}
	return r, se
}

func runLoad(t *testing.T, r *rig, se *fakeServeEngine) *results.Raw {
	t.Helper()
	w := r.worker()
	w.pace = virtualPacer{clk: r.clk, e: se}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // a hang guard only
	defer cancel()
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
	return r.saved()
}

func findingOf(raw *results.Raw, code string) *results.Finding {
	for i := range raw.Validity.Findings {
		if raw.Validity.Findings[i].Code == code {
			return &raw.Validity.Findings[i]
		}
	}
	return nil
}

func TestScheduleSeededAndExact(t *testing.T) {
	a := schedule("poisson", 40, 4, 7, 0)
	if b := schedule("poisson", 40, 4, 7, 0); !slices.Equal(a, b) {
		t.Fatal("the same seed and rank gave two schedules")
	}
	if b := schedule("poisson", 40, 4, 8, 0); slices.Equal(a, b) {
		t.Fatal("two seeds gave the same schedule")
	}
	if b := schedule("poisson", 40, 4, 7, 1); slices.Equal(a, b) {
		t.Fatal("two ranks gave the same schedule")
	}
	// The schedule's own rate is the target: 39 gaps over 39/4 s.
	if got, want := a[len(a)-1], int64(39.0/4*1e9); math.Abs(float64(got-want)) > 40 {
		t.Fatalf("last arrival at %d ns, want %d", got, want)
	}
	var gaps []float64
	for i := 1; i < len(a); i++ {
		if a[i] < a[i-1] {
			t.Fatalf("arrival %d before arrival %d", i, i-1)
		}
		gaps = append(gaps, float64(a[i]-a[i-1]))
	}
	if s := results.NewStats(gaps); *s.CV < 0.5 {
		t.Errorf("poisson gaps have CV %.2f, want about 1 (exponential)", *s.CV)
	}
	c := schedule("constant", 5, 2, 7, 0)
	if !slices.Equal(c, []int64{0, 5e8, 1e9, 15e8, 2e9}) {
		t.Fatalf("constant schedule %v", c)
	}
}

// With capacity to spare, every request leaves at its arrival time: the achieved rate is the
// target, nothing is late, and the engine never holds more than max_concurrency.
func TestLoadServeOnTarget(t *testing.T) {
	r, se := loadRig(t, "poisson", 20, 10, 4, true)
	raw := runLoad(t, r, se)
	l := raw.Load
	if l == nil || l.Path != PathServe || l.Sent != 20 || len(raw.Requests) != 20 || l.Failed != 0 {
		t.Fatalf("load %+v, %d requests", l, len(raw.Requests))
	}
	if se.served != 20 || se.serveCalls != 2 { // the probe, then the window
		t.Fatalf("engine served %d requests in %d Serve calls", se.served, se.serveCalls)
	}
	if se.peak > 4 || l.PeakConcurrency > 4 {
		t.Fatalf("peak in flight: engine %d, result %d; max_concurrency 4", se.peak, l.PeakConcurrency)
	}
	sched := schedule("poisson", 20, 10, 7, 0)
	for i, q := range raw.Requests {
		if q.SendMonoNS-raw.Requests[0].SendMonoNS != sched[i] || q.SendLateNS != 0 {
			t.Fatalf("request %d sent at +%d ns (late %d), scheduled at +%d", i, q.SendMonoNS-raw.Requests[0].SendMonoNS, q.SendLateNS, sched[i])
		}
	}
	sends := float64(raw.Requests[19].SendMonoNS-raw.Requests[0].SendMonoNS) / 1e9
	if got, want := *l.AchievedRatePerS, 19/sends; math.Abs(got-want) > 1e-9 || math.Abs(got-10) > 1e-6 {
		t.Fatalf("achieved rate %g, want %g from the sends and 10 from the schedule", got, want)
	}
	if f := findingOf(raw, CodeRateOffTarget); f != nil {
		t.Fatalf("rate on target but finding %+v", f)
	}
	if raw.Energy.Phases.NotAttributed == "" || raw.Energy.Phases.PrefillJ != nil {
		t.Fatalf("phases under continuous batching: %+v, want not attributed with a reason", raw.Energy.Phases)
	}
	if raw.LatencyMS.TTFT.Count != 20 || *raw.LatencyMS.TTFT.P50 != 10 || *raw.LatencyMS.ITL.P50 != 10 {
		t.Fatalf("latency %+v: want 20 TTFTs of 10 ms (one step) and ITL 10 ms", raw.LatencyMS)
	}
	if l.TokenCount["engine"] != 20 {
		t.Fatalf("token count sources %v", l.TokenCount)
	}
	if raw.Workload.OutputTokens != 80 {
		t.Fatalf("output tokens %d, want 20 × 4", raw.Workload.OutputTokens)
	}
}

// Arrivals faster than the engine finishes: the sender holds max_concurrency in flight and waits,
// so sends are late, the achieved rate falls short (a finding) and the steady state is reached.
func TestLoadServeSaturated(t *testing.T) {
	r, se := loadRig(t, "constant", 30, 100, 3, true)
	r.engine.step = 30 * time.Millisecond // 120 ms a request: 25 requests/s at 3 in flight
	raw := runLoad(t, r, se)
	l := raw.Load
	if l.Sent != 30 || se.served != 30 {
		t.Fatalf("sent %d, served %d", l.Sent, se.served)
	}
	if se.peak != 3 || l.PeakConcurrency != 3 {
		t.Fatalf("peak in flight: engine %d, result %d; want exactly max_concurrency 3", se.peak, l.PeakConcurrency)
	}
	if l.LateSends == 0 || *l.SendLateMS.Max <= 0 {
		t.Fatalf("no send was late: %+v", l)
	}
	sends := float64(raw.Requests[29].SendMonoNS-raw.Requests[0].SendMonoNS) / 1e9
	if got := *l.AchievedRatePerS; math.Abs(got-29/sends) > 1e-9 || got > 100*0.85 {
		t.Fatalf("achieved rate %g (from sends %g), want well below the target 100", got, 29/sends)
	}
	f := findingOf(raw, CodeRateOffTarget)
	if f == nil || f.Severity != results.SeverityWarning || !strings.Contains(f.Message, "off the target workload.rate of 100") {
		t.Fatalf("rate_off_target finding %+v", f)
	}
	ss := l.SteadyState
	if !ss.Reached || ss.DurationS <= 0 || ss.OutputTokens <= 0 || ss.TokensPerS == nil || ss.EnergyJ == nil || ss.JPerOutputToken == nil {
		t.Fatalf("steady state %+v", ss)
	}
	// The fake meter draws 150 W: the steady state's energy is 150 W × its duration.
	if math.Abs(*ss.EnergyJ-150*ss.DurationS) > 1e-6*150*ss.DurationS+1e-6 {
		t.Fatalf("steady-state energy %g J over %g s, want 150 W × duration", *ss.EnergyJ, ss.DurationS)
	}
	if ss.AtTargetS <= 0 || ss.AtTargetS > ss.DurationS+1e-9 {
		t.Fatalf("at target %g s of %g s", ss.AtTargetS, ss.DurationS)
	}
	if math.Abs(*l.MeanConcurrency-3) > 0.5 {
		t.Fatalf("mean concurrency %g, want near 3", *l.MeanConcurrency)
	}
}

func TestLoadSteadyStateNotReached(t *testing.T) {
	r, se := loadRig(t, "constant", 10, 5, 4, true) // one 40 ms request every 200 ms
	raw := runLoad(t, r, se)
	if raw.Load.SteadyState.Reached || raw.Load.PeakConcurrency != 1 {
		t.Fatalf("steady state %+v, peak %d", raw.Load.SteadyState, raw.Load.PeakConcurrency)
	}
	f := findingOf(raw, CodeSteadyStateNotReached)
	if f == nil || f.Severity != results.SeverityInfo || !strings.Contains(f.Message, "never reached workload.max_concurrency = 4 (peak 1)") {
		t.Fatalf("finding %+v", f)
	}
}

// Failures are counted by kind; the verdict is invalid only above validity.max_error_rate.
func TestLoadFailuresAndVerdict(t *testing.T) {
	for _, c := range []struct {
		limit float64
		valid bool
		sev   string
	}{{0.25, true, results.SeverityWarning}, {0.2, true, results.SeverityWarning}, {0.1, false, results.SeverityError}} {
		t.Run(fmt.Sprint(c.limit), func(t *testing.T) {
			r, se := loadRig(t, "poisson", 20, 10, 4, true)
			se.failEvery = 5 // 4 of 20: 20 %
			r.spec.Validity.MaxErrorRate = c.limit
			raw := runLoad(t, r, se)
			l := raw.Load
			if l.Sent != 20 || l.Failed != 4 || l.FailuresByKind["http_5xx"] != 4 || *l.FailureShare != 0.2 {
				t.Fatalf("load %+v", l)
			}
			f := findingOf(raw, CodeRequestsFailed)
			if f == nil || f.Severity != c.sev || !strings.Contains(f.Message, "4 of 20 requests failed (20.0 %): http_5xx 4") {
				t.Fatalf("finding %+v", f)
			}
			if raw.Validity.Valid != c.valid {
				t.Fatalf("valid = %v at max_error_rate %g, want %v", raw.Validity.Valid, c.limit, c.valid)
			}
			if raw.LatencyMS.TTFT.Count != 16 {
				t.Fatalf("%d TTFTs, want the 16 requests that did not fail", raw.LatencyMS.TTFT.Count)
			}
			var failed int
			for _, q := range raw.Requests {
				if q.Failed() {
					failed++
					if q.ErrorKind != "http_5xx" || q.Error == "" || q.FinishReason != "error" {
						t.Fatalf("failed request %+v", q)
					}
				}
			}
			if failed != 4 {
				t.Fatalf("%d failed requests recorded", failed)
			}
		})
	}
}

func TestLoadRemoteEnergyNotAttributed(t *testing.T) {
	r, se := loadRig(t, "constant", 10, 20, 2, true)
	se.load = &sdk.LoadResult{ExecutionProvider: "openai", Endpoint: "http://gpu-box:8000", Remote: true, Served: map[string]string{"id": "llama"}}
	raw := runLoad(t, r, se)
	f := findingOf(raw, CodeEnergyNotAttributed)
	if f == nil || !strings.Contains(f.Message, "energy not attributed: the model runs on http://gpu-box:8000, another machine; the meters here measured only this machine") {
		t.Fatalf("finding %+v", f)
	}
	e := raw.Energy
	if e.TotalJ == nil || e.JPerOutputToken != nil || e.JPerRequest != nil || e.TokensPerJ != nil || !strings.Contains(e.NotAttributed, "gpu-box") {
		t.Fatalf("energy %+v: want this machine's total, no per-token figures, and the reason", e)
	}
	if raw.Engine.Endpoint != "http://gpu-box:8000" || !raw.Engine.Remote || raw.Engine.Served["id"] != "llama" {
		t.Fatalf("engine %+v", raw.Engine)
	}
	for _, rep := range raw.Repeats {
		if rep.JPerOutputToken != nil {
			t.Fatalf("repeat %d divides this machine's energy by the remote tokens", rep.Index)
		}
	}
}

// An engine without Serve runs the waiting requests as static batches of up to max_concurrency.
func TestLoadStaticFallback(t *testing.T) {
	r, _ := loadRig(t, "constant", 12, 100, 3, false) // 40 ms batches, a request every 10 ms
	r.spec.Workload.Repeats = 2
	raw := runLoad(t, r, nil)
	l := raw.Load
	if l.Path != PathStaticFallback || l.Sent != 24 || len(raw.Requests) != 24 {
		t.Fatalf("load %+v, %d requests", l, len(raw.Requests))
	}
	f := findingOf(raw, CodeServeFallback)
	if f == nil || f.Severity != results.SeverityWarning || !strings.Contains(f.Message, "static batches") {
		t.Fatalf("finding %+v", f)
	}
	var batches int
	for _, c := range r.rec.list() {
		ids, ok := strings.CutPrefix(c, "engine.Generate ")
		if !ok {
			continue
		}
		batches++
		if n := len(strings.Split(ids, ",")); n > 3 {
			t.Fatalf("a static batch of %d requests: %s", n, c)
		}
	}
	if batches < 24/3 {
		t.Fatalf("%d batches for 24 requests", batches)
	}
	if l.PeakConcurrency > 3 || len(raw.Repeats) != 2 {
		t.Fatalf("peak %d, %d repeats", l.PeakConcurrency, len(raw.Repeats))
	}
	if raw.Energy.Phases.PrefillJ == nil || raw.Energy.Phases.NotAttributed != "" {
		t.Fatalf("static batches split their phases: %+v", raw.Energy.Phases)
	}
	for _, q := range raw.Requests {
		if q.ID == "" || !strings.HasPrefix(q.ID, "p") || strings.Contains(q.ID, "#") {
			t.Fatalf("request id %q, want the prompt's id", q.ID)
		}
	}
}

func TestLoadServeEngineError(t *testing.T) {
	r, se := loadRig(t, "constant", 5, 10, 2, true)
	w := r.worker()
	w.pace = virtualPacer{clk: r.clk, e: se}
	r.serving = &brokenServe{fakeServeEngine: se}
	err := w.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "engine Serve") {
		t.Fatalf("err = %v, want the engine's Serve error", err)
	}
	r.nothingSaved()
}

// brokenServe fails every Serve call.
type brokenServe struct{ *fakeServeEngine }

func (b *brokenServe) Serve(context.Context, sdk.ServeOptions, <-chan sdk.ServeRequest, func(sdk.ServeEvent) error) error {
	return errors.New("device lost")
}
