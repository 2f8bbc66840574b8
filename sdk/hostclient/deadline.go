package hostclient

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/lemctl/lemctl/sdk"
)

// CallTimeouts bounds how long the host waits for a plugin to answer one call, per kind of call.
// A zero duration means no deadline of this package's own (the caller's context still applies,
// and during a run the watchdog, launch.stall_timeout_s, covers the call).
type CallTimeouts struct {
	// Control bounds Configure, every Meter call (Inventory, Environment, Start, Mark, Stop) and
	// Engine.Unload.
	Control time.Duration
	// Repository bounds every Repository call.
	Repository time.Duration
	// Load bounds Engine.Load.
	Load time.Duration
	// Generate bounds one Engine.Generate or Engine.Warmup call (one batch).
	Generate time.Duration
}

// DefaultCallTimeouts are the deadlines every Client starts with (docs/reliability.md,
// "Deadlines on plugin calls"). Generate has none: a batch's length depends on the model, and
// the run's watchdog covers it. Loader calls (Resolve may download a model) have none either.
func DefaultCallTimeouts() CallTimeouts {
	return CallTimeouts{Control: 30 * time.Second, Repository: 60 * time.Second, Load: 10 * time.Minute}
}

// DeadlineError says that a plugin did not answer a call within its deadline.
type DeadlineError struct {
	Plugin string        // the plugin's name
	Call   string        // "Meter.Start", "Repository.SaveRaw", …
	After  time.Duration // the deadline that passed
}

func (e *DeadlineError) Error() string {
	return fmt.Sprintf("plugin %s: call %s did not answer within %s", e.Plugin, e.Call, e.After)
}

// Unwrap lets errors.Is(err, context.DeadlineExceeded) match.
func (e *DeadlineError) Unwrap() error { return context.DeadlineExceeded }

// SetCallTimeouts replaces the client's call deadlines (DefaultCallTimeouts until then). It
// applies to calls that start after it returns.
func (c *Client) SetCallTimeouts(t CallTimeouts) { c.timeouts.Store(&t) }

// CallTimeouts returns the client's call deadlines.
func (c *Client) CallTimeouts() CallTimeouts { return *c.timeouts.Load() }

// deadlines is what the kind wrappers share: the plugin's name and the current deadlines.
type deadlines struct {
	plugin   string
	timeouts *atomic.Pointer[CallTimeouts]
}

// call runs f under the deadline pick chooses, and turns the expiry of that deadline (not of the
// caller's own context) into a *DeadlineError.
func (d deadlines) call(ctx context.Context, name string, pick func(CallTimeouts) time.Duration, f func(context.Context) error) error {
	limit := pick(*d.timeouts.Load())
	if limit <= 0 {
		return f(ctx)
	}
	cctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	deadline, _ := cctx.Deadline()
	err := f(cctx)
	// The plugin's side of the call ends at the same deadline (gRPC sends it along) and may
	// report that first, as a cancellation: what counts is that the deadline has passed.
	if err != nil && ctx.Err() == nil && !time.Now().Before(deadline) {
		return &DeadlineError{Plugin: d.plugin, Call: name, After: limit}
	}
	return err
}

func control(t CallTimeouts) time.Duration    { return t.Control }
func repository(t CallTimeouts) time.Duration { return t.Repository }
func load(t CallTimeouts) time.Duration       { return t.Load }
func generate(t CallTimeouts) time.Duration   { return t.Generate }

// timedMeter bounds every Meter call.
type timedMeter struct {
	deadlines
	m sdk.Meter
}

func (t timedMeter) Inventory(ctx context.Context) (out []sdk.Domain, err error) {
	err = t.call(ctx, "Meter.Inventory", control, func(ctx context.Context) (e error) { out, e = t.m.Inventory(ctx); return })
	return
}
func (t timedMeter) Environment(ctx context.Context) (out *sdk.Environment, err error) {
	err = t.call(ctx, "Meter.Environment", control, func(ctx context.Context) (e error) { out, e = t.m.Environment(ctx); return })
	return
}
func (t timedMeter) Start(ctx context.Context, req sdk.StartRequest) (out *sdk.Session, err error) {
	err = t.call(ctx, "Meter.Start", control, func(ctx context.Context) (e error) { out, e = t.m.Start(ctx, req); return })
	return
}
func (t timedMeter) Mark(ctx context.Context, session, label string) (out int64, err error) {
	err = t.call(ctx, "Meter.Mark", control, func(ctx context.Context) (e error) { out, e = t.m.Mark(ctx, session, label); return })
	return
}
func (t timedMeter) Stop(ctx context.Context, session string) (out *sdk.Measurement, err error) {
	err = t.call(ctx, "Meter.Stop", control, func(ctx context.Context) (e error) { out, e = t.m.Stop(ctx, session); return })
	return
}

// timedEngine bounds Load, Unload, Warmup and Generate.
type timedEngine struct {
	deadlines
	e sdk.Engine
}

func (t timedEngine) Load(ctx context.Context, req sdk.LoadRequest) (out *sdk.LoadResult, err error) {
	err = t.call(ctx, "Engine.Load", load, func(ctx context.Context) (e error) { out, e = t.e.Load(ctx, req); return })
	return
}
func (t timedEngine) Warmup(ctx context.Context, req sdk.WarmupRequest) (out []sdk.BatchTiming, err error) {
	err = t.call(ctx, "Engine.Warmup", generate, func(ctx context.Context) (e error) { out, e = t.e.Warmup(ctx, req); return })
	return
}
func (t timedEngine) Generate(ctx context.Context, req sdk.GenerateRequest, emit func(sdk.RequestResult) error) (out *sdk.BatchTiming, err error) {
	err = t.call(ctx, "Engine.Generate", generate, func(ctx context.Context) (e error) { out, e = t.e.Generate(ctx, req, emit); return })
	return
}

// Serve has no deadline of its own: it lasts as long as its caller sends requests, and ends
// with ctx.
func (t timedEngine) Serve(ctx context.Context, opts sdk.ServeOptions, in <-chan sdk.ServeRequest, emit func(sdk.ServeEvent) error) error {
	ce, ok := t.e.(sdk.ContinuousEngine)
	if !ok {
		return fmt.Errorf("engine of plugin %s: %w: no continuous batching", t.plugin, sdk.ErrUnimplemented)
	}
	return ce.Serve(ctx, opts, in, emit)
}

func (t timedEngine) Unload(ctx context.Context) error {
	return t.call(ctx, "Engine.Unload", control, t.e.Unload)
}

// timedRepository bounds every Repository call.
type timedRepository struct {
	deadlines
	r sdk.Repository
}

func (t timedRepository) SaveRaw(ctx context.Context, exp string, rank int, data []byte) (out *sdk.Stored, err error) {
	err = t.call(ctx, "Repository.SaveRaw", repository, func(ctx context.Context) (e error) { out, e = t.r.SaveRaw(ctx, exp, rank, data); return })
	return
}
func (t timedRepository) MarkComplete(ctx context.Context, exp string, rank int, sha string) (out *sdk.Marker, err error) {
	err = t.call(ctx, "Repository.MarkComplete", repository, func(ctx context.Context) (e error) { out, e = t.r.MarkComplete(ctx, exp, rank, sha); return })
	return
}
func (t timedRepository) ListRaw(ctx context.Context, exp string) (out []sdk.RawEntry, err error) {
	err = t.call(ctx, "Repository.ListRaw", repository, func(ctx context.Context) (e error) { out, e = t.r.ListRaw(ctx, exp); return })
	return
}
func (t timedRepository) LoadRaw(ctx context.Context, exp string, rank int) (out []byte, err error) {
	err = t.call(ctx, "Repository.LoadRaw", repository, func(ctx context.Context) (e error) { out, e = t.r.LoadRaw(ctx, exp, rank); return })
	return
}
func (t timedRepository) SaveAggregated(ctx context.Context, exp string, data []byte, overwrite bool) (out *sdk.Stored, err error) {
	err = t.call(ctx, "Repository.SaveAggregated", repository, func(ctx context.Context) (e error) { out, e = t.r.SaveAggregated(ctx, exp, data, overwrite); return })
	return
}
func (t timedRepository) LoadAggregated(ctx context.Context, exp string) (out []byte, err error) {
	err = t.call(ctx, "Repository.LoadAggregated", repository, func(ctx context.Context) (e error) { out, e = t.r.LoadAggregated(ctx, exp); return })
	return
}
func (t timedRepository) SaveManifest(ctx context.Context, exp string, data []byte) (out *sdk.Stored, err error) {
	err = t.call(ctx, "Repository.SaveManifest", repository, func(ctx context.Context) (e error) { out, e = t.r.SaveManifest(ctx, exp, data); return })
	return
}
func (t timedRepository) LoadManifest(ctx context.Context, exp string) (out []byte, err error) {
	err = t.call(ctx, "Repository.LoadManifest", repository, func(ctx context.Context) (e error) { out, e = t.r.LoadManifest(ctx, exp); return })
	return
}
func (t timedRepository) List(ctx context.Context) (out []sdk.Experiment, err error) {
	err = t.call(ctx, "Repository.List", repository, func(ctx context.Context) (e error) { out, e = t.r.List(ctx); return })
	return
}

// ListStrays implements sdk.StrayLister (the gRPC repository client always serves it).
func (t timedRepository) ListStrays(ctx context.Context, exp string) (out []sdk.Stray, err error) {
	sl, ok := t.r.(sdk.StrayLister)
	if !ok {
		return nil, nil
	}
	err = t.call(ctx, "Repository.ListStrays", repository, func(ctx context.Context) (e error) { out, e = sl.ListStrays(ctx, exp); return })
	return
}
