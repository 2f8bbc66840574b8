package worker

import (
	"context"
	"sync"
	"time"

	"github.com/lemctl/lemctl/host/launch"
	"github.com/lemctl/lemctl/sdk"
)

// tracker records the plugin call in flight and a progress counter, for the heartbeat the
// parent's watchdog reads (docs/reliability.md, "Watchdog"). Beginning or ending a call, and each
// result a call streams, move the counter; a call whose counter stands still for
// launch.stall_timeout_s is a stall.
type tracker struct {
	mu     sync.Mutex
	call   string
	since  time.Time
	seq    uint64
	moved  time.Time
	phase  string
	nested int
}

// begin records that call (e.g. "engine.Generate") is in flight; end, returned, that it is over.
func (t *tracker) begin(call string) (end func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	t.nested++
	if t.nested == 1 {
		t.call, t.since = call, now
	}
	t.seq++
	t.moved = now
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.nested--
		if t.nested == 0 {
			t.call = ""
		}
		t.seq++
		t.moved = time.Now()
	}
}

// progress moves the counter: the call in flight is making progress.
func (t *tracker) progress() {
	t.mu.Lock()
	t.seq++
	t.moved = time.Now()
	t.mu.Unlock()
}

func (t *tracker) setPhase(p string) {
	t.mu.Lock()
	t.phase = p
	t.mu.Unlock()
}

// heartbeat is the message that reports where the worker stands now.
func (t *tracker) heartbeat() launch.Message {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := launch.Message{Phase: t.phase, Call: t.call, Seq: t.seq}
	if t.call != "" {
		m.CallSinceUnixNS = t.since.UnixNano()
		m.IdleS = time.Since(t.moved).Seconds()
	}
	return m
}

// beat sends a heartbeat every period until ctx ends (nothing when period is 0).
func (t *tracker) beat(ctx context.Context, ctl Control, period time.Duration) {
	if period <= 0 {
		return
	}
	tk := time.NewTicker(period)
	defer tk.Stop()
	for {
		ctl.Heartbeat(t.heartbeat())
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
	}
}

// The tracked* types wrap a plugin's interface so that every call is recorded in the tracker.

type trackedLoader struct {
	sdk.Loader
	t *tracker
}

func (l trackedLoader) Resolve(ctx context.Context, ref string) (*sdk.Artifact, error) {
	defer l.t.begin("loader.Resolve")()
	return l.Loader.Resolve(ctx, ref)
}

func (l trackedLoader) Tokenize(ctx context.Context, ref string, texts []string) ([][]int32, error) {
	defer l.t.begin("loader.Tokenize")()
	return l.Loader.Tokenize(ctx, ref, texts)
}

func (l trackedLoader) Detokenize(ctx context.Context, ref string, ids [][]int32) ([]string, error) {
	defer l.t.begin("loader.Detokenize")()
	return l.Loader.Detokenize(ctx, ref, ids)
}

type trackedEngine struct {
	sdk.Engine
	t *tracker
}

func (e trackedEngine) Load(ctx context.Context, req sdk.LoadRequest) (*sdk.LoadResult, error) {
	defer e.t.begin("engine.Load")()
	return e.Engine.Load(ctx, req)
}

func (e trackedEngine) Warmup(ctx context.Context, req sdk.WarmupRequest) ([]sdk.BatchTiming, error) {
	defer e.t.begin("engine.Warmup")()
	return e.Engine.Warmup(ctx, req)
}

// Generate counts each request result the engine streams as progress.
func (e trackedEngine) Generate(ctx context.Context, req sdk.GenerateRequest, emit func(sdk.RequestResult) error) (*sdk.BatchTiming, error) {
	defer e.t.begin("engine.Generate")()
	return e.Engine.Generate(ctx, req, func(r sdk.RequestResult) error {
		e.t.progress()
		return emit(r)
	})
}

func (e trackedEngine) Unload(ctx context.Context) error {
	defer e.t.begin("engine.Unload")()
	return e.Engine.Unload(ctx)
}

type trackedMeter struct {
	sdk.Meter
	name string // "meter <plugin>"
	t    *tracker
}

func (m trackedMeter) Inventory(ctx context.Context) ([]sdk.Domain, error) {
	defer m.t.begin(m.name + ".Inventory")()
	return m.Meter.Inventory(ctx)
}

func (m trackedMeter) Environment(ctx context.Context) (*sdk.Environment, error) {
	defer m.t.begin(m.name + ".Environment")()
	return m.Meter.Environment(ctx)
}

func (m trackedMeter) Start(ctx context.Context, req sdk.StartRequest) (*sdk.Session, error) {
	defer m.t.begin(m.name + ".Start")()
	return m.Meter.Start(ctx, req)
}

func (m trackedMeter) Mark(ctx context.Context, session, label string) (int64, error) {
	defer m.t.begin(m.name + ".Mark")()
	return m.Meter.Mark(ctx, session, label)
}

func (m trackedMeter) Stop(ctx context.Context, session string) (*sdk.Measurement, error) {
	defer m.t.begin(m.name + ".Stop")()
	return m.Meter.Stop(ctx, session)
}

type trackedRepository struct {
	sdk.Repository
	t *tracker
}

func (r trackedRepository) SaveRaw(ctx context.Context, experiment string, rank int, data []byte) (*sdk.Stored, error) {
	defer r.t.begin("repository.SaveRaw")()
	return r.Repository.SaveRaw(ctx, experiment, rank, data)
}

func (r trackedRepository) MarkComplete(ctx context.Context, experiment string, rank int, sha256 string) (*sdk.Marker, error) {
	defer r.t.begin("repository.MarkComplete")()
	return r.Repository.MarkComplete(ctx, experiment, rank, sha256)
}
