package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/lemctl/lemctl/host/energy"
	"github.com/lemctl/lemctl/host/launch"
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/sysinfo"
	"github.com/lemctl/lemctl/host/version"
	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/clock"
	"github.com/lemctl/lemctl/sdk/hostclient"
)

// Control is the worker's side of the control channel.
type Control interface {
	Barrier(ctx context.Context, name string) error
	Progress(m launch.Message)
	// Heartbeat reports the phase and the plugin call in flight, for the parent's watchdog.
	Heartbeat(m launch.Message)
}

// Worker runs one spec.
type Worker struct {
	Spec    *launch.Spec
	Control Control
	Log     hclog.Logger
	Sys     *sysinfo.Reader
	// PauseAt is the test-only pause hook "<phase>:<rank>:<file>" ($LEM_TEST_PAUSE): when this
	// rank reaches the phase it writes its pid to file and blocks until its context ends.
	PauseAt string

	// open opens the plugin of ref for kind; nil starts the plugin binaries (plugins.go). The
	// lifecycle tests give in-process plugins here.
	open func(ctx context.Context, ref launch.PluginRef, kind sdk.Kind) (*hostclient.Client, error)
	// mono is the monotonic clock of the warm-up bounds and the window's passes, in ns; nil is
	// clock.Mono. The lifecycle tests give a fake one.
	mono func() int64
	// pace is the clock of a constant or poisson load (load.go); nil is the monotonic clock. The
	// lifecycle tests give a virtual one.
	pace pacer
}

// meter is one energy plugin in use.
type meter struct {
	ref    launch.PluginRef
	client *hostclient.Client // nil for a meter with nothing available here (ref.Unavailable)
	api    sdk.Meter          // the client's meter, its calls tracked for the watchdog
}

// unavailable is the measurement a meter with no available domain returns: every domain
// unmeasured with its reason.
func (m meter) unavailable() *sdk.Measurement {
	out := &sdk.Measurement{}
	if m.ref.Unavailable == nil {
		return out
	}
	for _, d := range m.ref.Unavailable.Domains {
		out.Domains = append(out.Domains, sdk.DomainEnergy{Domain: d})
	}
	return out
}

type state struct {
	w        *Worker
	plugins  opened
	loader   sdk.Loader
	engine   sdk.Engine
	engineC  *hostclient.Client
	meters   []meter
	repo     sdk.Repository
	phases   map[string]results.Span
	raw      *results.Raw
	idle     map[string]float64
	idleU    map[string]float64 // the standard uncertainty of each idle power, W
	artifact *sdk.Artifact
	load     *sdk.LoadResult
	// domainPlugin names the meter plugin of each domain id.
	domainPlugin map[string]string
	// findings are raised before the window (warm-up) and join the verdict.
	findings []results.Finding
	// tr records the plugin call in flight for the heartbeat (watch.go).
	tr *tracker
	// loadPath is how a constant or poisson load runs (PathServe or PathStaticFallback);
	// loadSent and loadReceived count the Serve requests sent and results received over the
	// repeats so far.
	loadPath     string
	loadReceived int
	loadSent     int
}

// Run executes the lifecycle and stores the raw result. It returns the error that ended it;
// errors.Is(err, launch.ErrStopped) means the user interrupted the run.
func (w *Worker) Run(ctx context.Context) error {
	if w.Sys == nil {
		w.Sys = sysinfo.Default()
	}
	st := &state{w: w, phases: map[string]results.Span{}, tr: &tracker{}}
	st.plugins.opener.Log = w.Log
	if t := w.Spec.CallTimeouts; t != nil {
		ct := t.Client()
		st.plugins.opener.Timeouts = &ct
	}
	// The heartbeat runs until the plugins are closed: a worker stuck closing them goes silent
	// and the watchdog sees it.
	beatCtx, stopBeat := context.WithCancel(context.WithoutCancel(ctx))
	beatDone := make(chan struct{})
	go func() {
		defer close(beatDone)
		st.tr.beat(beatCtx, w.Control, launch.HeartbeatPeriod(w.Spec.StallTimeoutS))
	}()
	defer func() { stopBeat(); <-beatDone }()
	defer st.plugins.closeAll()
	if err := st.run(ctx); err != nil {
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
			return cause
		}
		return err
	}
	return nil
}

func (st *state) run(ctx context.Context) error {
	w, spec := st.w, st.w.Spec
	log := w.Log
	st.raw = &results.Raw{SchemaVersion: results.SchemaVersion, Kind: results.KindRaw, ExperimentID: spec.ExperimentID,
		ConfigHash: spec.ConfigHash, Config: spec.Config, Rank: spec.Rank, WorldSize: spec.WorldSize,
		Device: spec.Device.Result(seenEnv(spec.Device.Env)), Dataset: results.Dataset(spec.Dataset),
		Model: results.Model{Ref: spec.Model.Ref}, Requests: []results.Request{}, Warnings: []results.Warning{}, Repeats: []results.Repeat{}}
	for _, k := range slices.Sorted(maps.Keys(spec.Device.Env)) {
		if got, want := st.raw.Device.SeenEnv[k], spec.Device.Env[k]; got != want {
			st.warn("device %s: this worker sees %s=%q, not %q as its energy plugin %s gave it: it may not see only its own device", spec.Device.UUID, k, got, want, spec.Device.Meter)
		}
	}
	for _, o := range spec.Overrides {
		st.raw.Provenance.Overrides = append(st.raw.Provenance.Overrides, results.Override(o))
	}
	st.raw.Provenance.LemctlVersion, st.raw.Provenance.LemctlCommit = version.Version, version.CommitOrUnknown()
	host, err := w.Sys.Host()
	if err != nil {
		return err
	}
	st.raw.Host = results.Host(host)
	st.raw.Slurm = slurmTask(spec, nil)

	// Plugins.
	if err := st.phase(ctx, "plugins", func() error { return st.openPlugins(ctx) }); err != nil {
		return err
	}
	// Environment snapshot.
	if err := st.phase(ctx, "environment", func() error { return st.environment(ctx) }); err != nil {
		return err
	}
	if err := st.barrier(ctx, launch.BarrierBaseline); err != nil {
		return err
	}
	if err := st.phase(ctx, "idle_baseline", func() error { return st.baseline(ctx) }); err != nil {
		return err
	}
	if err := st.barrier(ctx, launch.BarrierLoad); err != nil {
		return err
	}
	if err := st.phase(ctx, "load", func() error { return st.loadModel(ctx) }); err != nil {
		return err
	}
	if err := st.phase(ctx, "warmup", func() error {
		if err := st.decideServe(ctx); err != nil {
			return err
		}
		return st.warmup(ctx)
	}); err != nil {
		return err
	}
	if s := spec.Lifecycle.ThermalWaitS; s > 0 {
		if err := st.phase(ctx, "thermal_wait", func() error { return sleep(ctx, s) }); err != nil {
			return err
		}
	}
	if err := st.barrier(ctx, launch.BarrierWindow); err != nil {
		return err
	}
	offset := clockOffset()
	var m *measured
	if err := st.phase(ctx, "measured", func() error { var err error; m, err = st.measure(ctx); return err }); err != nil {
		return err
	}
	st.raw.Clock = &results.Clock{MonoToUnixNS: offset, MonoToUnixEndNS: clockOffset(), Sync: clockSync(nil)}
	if s := spec.Lifecycle.CooldownS; s > 0 {
		if err := st.phase(ctx, "cooldown", func() error { return sleep(ctx, s) }); err != nil {
			return err
		}
	}
	if err := st.engine.Unload(ctx); err != nil {
		log.Warn("unload failed", "error", err)
	}
	st.metrics(m)
	return st.save(ctx)
}

// phase runs f and records its span.
func (st *state) phase(ctx context.Context, name string, f func() error) error {
	st.tr.setPhase(name)
	st.w.Control.Progress(launch.Message{Phase: name})
	st.pause(ctx, name)
	start := clock.Now()
	err := f()
	end := clock.Now()
	st.phases[name] = span(start, end)
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		// A plugin that died (a panic, a crash) answers EOF or Unavailable: say why it died.
		return fmt.Errorf("%s: %w", name, st.plugins.opener.Explain(err))
	}
	return nil
}

func span(start, end clock.Stamp) results.Span {
	return results.Span{StartMonoNS: start.MonoNS, EndMonoNS: end.MonoNS, StartUnixNS: start.WallNS, EndUnixNS: end.WallNS,
		DurationS: float64(end.MonoNS-start.MonoNS) / 1e9}
}

func (st *state) barrier(ctx context.Context, name string) error {
	st.tr.setPhase("barrier:" + name)
	st.w.Control.Progress(launch.Message{Phase: "barrier:" + name})
	if err := st.w.Control.Barrier(ctx, name); err != nil {
		return fmt.Errorf("barrier %s: %w", name, err)
	}
	return nil
}

// pause implements the test-only hook: "<phase>:<rank>:<file>".
func (st *state) pause(ctx context.Context, phase string) {
	parts := strings.SplitN(st.w.PauseAt, ":", 3)
	if len(parts) != 3 || parts[0] != phase || parts[1] != strconv.Itoa(st.w.Spec.Rank) {
		return
	}
	tmp := parts[2] + ".tmp"
	_ = os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())), 0o644)
	_ = os.Rename(tmp, parts[2])
	st.w.Log.Warn("test pause hook: holding", "phase", phase, "file", parts[2])
	// Held until the run ends, or until the test removes the file to let the worker go on.
	tk := time.NewTicker(20 * time.Millisecond)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
			if _, err := os.Stat(parts[2]); errors.Is(err, os.ErrNotExist) {
				st.w.Log.Warn("test pause hook: released", "phase", phase)
				return
			}
		}
	}
}

func sleep(ctx context.Context, seconds float64) error {
	t := time.NewTimer(time.Duration(seconds * float64(time.Second)))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (st *state) openPlugins(ctx context.Context) error {
	spec := st.w.Spec
	if st.w.open == nil {
		// Every distinct binary starts once, in parallel (a test's in-process plugins need none).
		roles := []role{{spec.Model.Loader, sdk.KindLoader}, {spec.Engine, sdk.KindEngine}}
		for _, ref := range spec.Meters {
			if ref.Unavailable == nil {
				roles = append(roles, role{ref, sdk.KindEnergy})
			}
		}
		end := st.tr.begin("plugins.start")
		err := st.plugins.startAll(ctx, append(roles, role{spec.Repository, sdk.KindRepository}))
		end()
		if err != nil {
			return err
		}
	}
	lc, err := st.open(ctx, spec.Model.Loader, sdk.KindLoader)
	if err != nil {
		return err
	}
	st.loader = trackedLoader{Loader: lc.Loader(), t: st.tr}
	ec, err := st.open(ctx, spec.Engine, sdk.KindEngine)
	if err != nil {
		return err
	}
	st.engine, st.engineC = trackedEngine{Engine: ec.Engine(), t: st.tr}, ec
	for _, ref := range spec.Meters {
		if ref.Unavailable != nil {
			// Nothing to measure on this host (the parent asked): not started, see unavailable.
			st.meters = append(st.meters, meter{ref: ref})
			continue
		}
		mc, err := st.open(ctx, ref, sdk.KindEnergy)
		if err != nil {
			return err
		}
		st.meters = append(st.meters, meter{ref: ref, client: mc, api: trackedMeter{Meter: mc.Meter(), name: "meter(" + ref.Name + ")", t: st.tr}})
	}
	rc, err := st.open(ctx, spec.Repository, sdk.KindRepository)
	if err != nil {
		return err
	}
	st.repo = trackedRepository{Repository: rc.Repository(), t: st.tr}
	// One entry per binary, in the order the spec names them: loader, engine, meters, repository.
	seen := map[string]bool{}
	for _, ref := range append(append([]launch.PluginRef{spec.Model.Loader, spec.Engine}, spec.Meters...), spec.Repository) {
		if seen[ref.Path] {
			continue
		}
		seen[ref.Path] = true
		p := results.Plugin{Name: ref.Name, Version: ref.Version, Kinds: ref.Kinds, SHA256: ref.SHA256}
		if c, ok := st.plugins.byPath[ref.Path]; ok {
			info := c.Info()
			p = results.Plugin{Name: info.Name, Version: info.Version, SHA256: ref.SHA256}
			for _, k := range info.Kinds {
				p.Kinds = append(p.Kinds, string(k))
			}
		}
		st.raw.Plugins = append(st.raw.Plugins, p)
	}
	return nil
}

// open opens the plugin of ref for kind: in-process when the Worker has an opener (tests), else
// its binary.
func (st *state) open(ctx context.Context, ref launch.PluginRef, kind sdk.Kind) (*hostclient.Client, error) {
	if st.w.open != nil {
		return st.w.open(ctx, ref, kind)
	}
	return st.plugins.open(ctx, ref, kind)
}

// now reads the monotonic clock of the warm-up bounds and the window's passes.
func (st *state) now() int64 {
	if st.w.mono != nil {
		return st.w.mono()
	}
	return clock.Mono()
}

func (st *state) environment(ctx context.Context) error {
	env := results.Environment{Facts: st.w.Sys.Environment(), Devices: []results.DeviceEnvironment{}}
	for _, m := range st.meters {
		if m.client == nil {
			for k, v := range m.ref.Unavailable.Facts {
				env.Facts[m.ref.Name+"."+k] = v
			}
			continue
		}
		e, err := m.api.Environment(ctx)
		if err != nil {
			st.warn("meter %s: environment: %v", m.ref.Name, err)
			continue
		}
		for k, v := range e.Facts {
			env.Facts[m.ref.Name+"."+k] = v
		}
		for _, d := range e.Devices {
			env.Devices = append(env.Devices, results.DeviceEnvironment{ID: d.ID, Facts: d.Facts})
		}
	}
	st.raw.Environment = env
	return nil
}

// seenEnv reads the variables of a device's visibility environment from this process's own
// environment, so that the raw result proves what the worker saw (not what the parent meant):
// "" for a variable that is unset. nil for a device without one (cpu).
func seenEnv(env map[string]string) map[string]string {
	if len(env) == 0 {
		return nil
	}
	out := make(map[string]string, len(env))
	for k := range env {
		out[k] = os.Getenv(k)
	}
	return out
}

func (st *state) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	st.w.Log.Warn(msg)
	st.raw.Warnings = append(st.raw.Warnings, results.Warning{Message: msg, Rank: results.IntPtr(st.w.Spec.Rank)})
}

// baseline measures each domain's idle power before the model loads.
func (st *state) baseline(ctx context.Context) error {
	s := st.w.Spec.Lifecycle.BaselineS
	if s <= 0 || len(st.meters) == 0 {
		return nil
	}
	sessions, err := st.startMeters(ctx, "baseline")
	if err != nil {
		return err
	}
	if err := sleep(ctx, s); err != nil {
		st.stopMeters(context.WithoutCancel(ctx), sessions)
		return err
	}
	ms := st.stopMeters(ctx, sessions)
	st.idle, st.idleU = map[string]float64{}, map[string]float64{}
	for _, m := range ms {
		for id, p := range energy.IdlePowers(m) {
			st.idle[id] = p
		}
		for id, u := range energy.IdleUncertainties(m) {
			st.idleU[id] = u
		}
	}
	return nil
}

type session struct {
	meter meter
	id    string
	// edge is energy.EdgeWait of the session: how long it must run past an instant for its
	// counters to show an update after it.
	edge time.Duration
}

// edgeWait is how long the window waits after the meters start before its first batch, and after
// its last batch before they stop: the sessions' longest edge.
func edgeWait(sessions []session) time.Duration {
	var d time.Duration
	for _, s := range sessions {
		d = max(d, s.edge)
	}
	return d
}

func (st *state) startMeters(ctx context.Context, label string) ([]session, error) {
	var out []session
	for _, m := range st.meters {
		if m.client == nil {
			out = append(out, session{meter: m})
			continue
		}
		// The parent settled each meter's interval (launch.PluginRef.IntervalNS).
		interval := time.Duration(m.ref.IntervalNS)
		s, err := m.api.Start(ctx, sdk.StartRequest{Label: label, Interval: interval})
		if err != nil {
			st.stopMeters(context.WithoutCancel(ctx), out)
			return nil, fmt.Errorf("start meter %s: %w", m.ref.Name, err)
		}
		out = append(out, session{meter: m, id: s.ID, edge: energy.EdgeWait(s)})
	}
	return out, nil
}

// stopMeters stops every session; a meter that fails to stop is a warning, and its domains are
// missing from the result (they will show as unmeasured, never as zero).
func (st *state) stopMeters(ctx context.Context, sessions []session) []*sdk.Measurement {
	var out []*sdk.Measurement
	for _, s := range sessions {
		m := s.meter.unavailable()
		if s.meter.client != nil {
			var err error
			if m, err = s.meter.api.Stop(ctx, s.id); err != nil {
				st.warn("stop meter %s: %v", s.meter.ref.Name, err)
				continue
			}
		}
		if st.domainPlugin == nil {
			st.domainPlugin = map[string]string{}
		}
		for _, d := range m.Domains {
			st.domainPlugin[d.Domain.ID] = s.meter.ref.Name
		}
		out = append(out, m)
	}
	return out
}

func (st *state) loadModel(ctx context.Context) error {
	spec := st.w.Spec
	a, err := st.resolveModel(ctx)
	if err != nil {
		return fmt.Errorf("resolve model %q: %w", spec.Model.Ref, err)
	}
	st.artifact = a
	st.raw.Model = results.Model{Ref: spec.Model.Ref, SHA256: a.SHA256, Architecture: a.Architecture, Synthetic: a.Synthetic}
	if a.Parameters > 0 {
		st.raw.Model.Parameters = results.Int64(a.Parameters)
	}
	dev := sdk.Device{Kind: "cpu", Index: -1}
	if spec.Device.Kind == launch.DeviceAccelerator {
		// The engine gets the vendor as the device kind, and index 0: the only device the
		// visibility environment leaves visible.
		dev = sdk.Device{Kind: spec.Device.Vendor, Index: 0, UUID: spec.Device.UUID}
	}
	lr, err := st.engine.Load(ctx, sdk.LoadRequest{Artifact: *a, Device: dev, Threads: spec.Threads, CPUs: spec.CPUs,
		TokenIDsOnly: allTokenized(spec.Prompts) && !spec.Workload.Decoding.ReturnText})
	if err != nil {
		return fmt.Errorf("load model on %s: %w", spec.Device.Slot, err)
	}
	st.load = lr
	st.raw.Engine = results.Engine{Plugin: spec.Engine.Name, Version: spec.Engine.Version, ExecutionProvider: lr.ExecutionProvider,
		Endpoint: lr.Endpoint, Remote: lr.Remote, Served: lr.Served}
	st.raw.Provenance.ExecutionProvider = lr.ExecutionProvider
	st.raw.Provenance.RuntimeVersions = lr.RuntimeVersions
	return nil
}

// resolveModel returns the parent's resolution of the model when it holds on this host (same
// boot, files unchanged), else resolves it with the loader: the model is hashed once per host.
func (st *state) resolveModel(ctx context.Context) (*sdk.Artifact, error) {
	spec := st.w.Spec
	r := spec.Model.Resolved
	why := r.UsableOn(st.raw.Host.BootID)
	if why == nil && r.Artifact.Reference == spec.Model.Ref {
		a := r.Artifact
		st.w.Log.Debug("model resolved by the parent", "ref", spec.Model.Ref, "sha256", a.SHA256)
		return &a, nil
	}
	if r != nil {
		st.w.Log.Debug("resolving the model again", "ref", spec.Model.Ref, "why", why)
	}
	return st.loader.Resolve(ctx, spec.Model.Ref)
}

// allTokenized says every prompt carries its token ids (the parent tokenized them with the
// loader), so the engine needs no tokenizer of its own.
func allTokenized(prompts []sdk.Prompt) bool {
	for _, p := range prompts {
		if len(p.IDs) == 0 {
			return false
		}
	}
	return true
}

// batches splits the shard into static batches (of max_concurrency for a constant or poisson
// load: its warm-up batch).
func (st *state) batches() [][]sdk.Prompt {
	prompts, size := st.w.Spec.Prompts, max(1, st.w.Spec.Workload.BatchSize)
	if ld := st.w.Spec.Workload.Load; ld != nil {
		size = max(1, ld.MaxConcurrency)
	}
	var out [][]sdk.Prompt
	for i := 0; i < len(prompts); i += size {
		out = append(out, prompts[i:min(i+size, len(prompts))])
	}
	return out
}

func (st *state) warmup(ctx context.Context) error {
	lc := st.w.Spec.Lifecycle
	bs := st.batches()
	if len(bs) == 0 {
		return nil
	}
	req := sdk.GenerateRequest{Prompts: bs[0], Decoding: st.w.Spec.Workload.Decoding}
	if lc.WarmupMode != "cv" {
		if lc.WarmupBatch <= 0 {
			return nil
		}
		_, err := st.engine.Warmup(ctx, sdk.WarmupRequest{GenerateRequest: req, Batches: lc.WarmupBatch})
		return err
	}
	bounds := warmupBounds{TargetCV: lc.CVThreshold, Window: lc.CVWindow, MinBatches: lc.MinBatches, MaxBatches: lc.MaxBatches, MaxS: lc.WarmupMaxS}
	out, err := cvWarmup(ctx, bounds, st.now, func(ctx context.Context) ([]float64, error) {
		ts, err := st.engine.Warmup(ctx, sdk.WarmupRequest{GenerateRequest: req, Batches: 1})
		lat := make([]float64, 0, len(ts))
		for _, t := range ts {
			lat = append(lat, float64(t.EndMonoNS-t.StartMonoNS))
		}
		return lat, err
	}, func(p launch.WarmupProgress) { st.w.Control.Progress(launch.Message{Phase: "warmup", Warmup: &p}) })
	if err != nil {
		return err
	}
	if f := out.finding(bounds); f != nil {
		st.w.Log.Warn(f.Message)
		st.findings = append(st.findings, *f)
	}
	return nil
}

// measured is what the window produced.
type measured struct {
	window       energy.Interval
	start, end   clock.Stamp
	measurements []*sdk.Measurement
	prefill      []energy.Interval
	decode       []energy.Interval
	repeats      []repeatWindow
	passes       int
	meterCPUNS   int64
	meterCPUOK   bool
	// promptTokens are the token counts of the prompts the engine truncated (workload.go).
	promptTokens map[string]int
}

type repeatWindow struct {
	iv    energy.Interval
	start clock.Stamp
	end   clock.Stamp
	reqs  []results.Request
}

func (st *state) meterCPU() (int64, bool) {
	var total int64
	for _, m := range st.meters {
		if m.client == nil {
			continue
		}
		ns, err := st.w.Sys.CPUTimeNS(m.client.Pid())
		if err != nil {
			return 0, false
		}
		total += ns
	}
	return total, len(st.meters) > 0
}

// measure runs the measured window `repeats` times back to back inside one meter session per
// meter, marking every batch boundary.
func (st *state) measure(ctx context.Context) (*measured, error) {
	spec := st.w.Spec
	bs := st.batches()
	if len(bs) == 0 {
		return nil, errors.New("this rank's shard has no prompts")
	}
	repeats := max(1, spec.Workload.Repeats)
	sessions, err := st.startMeters(ctx, "window")
	if err != nil {
		return nil, err
	}
	m := &measured{}
	stopped := false
	defer func() {
		if !stopped {
			st.stopMeters(context.WithoutCancel(ctx), sessions)
		}
	}()
	// The session's first reading shows each counter as of its last update, up to one update
	// period earlier, and a last reading that repeats the one before says only that no update
	// came yet: the window's edges are read best between two update points, so the first batch
	// waits for one update after the start, and the stop for one after the last batch.
	wait := edgeWait(sessions)
	if err := sleep(ctx, wait.Seconds()); err != nil {
		return nil, err
	}
	cpu0, ok0 := st.meterCPU()
	for rep := 0; rep < repeats && spec.Workload.Load != nil; rep++ {
		reqs, err := st.loadRepeat(ctx, m, rep, sessions)
		if err != nil {
			return nil, err
		}
		iv := repeatSpan(reqs)
		m.repeats = append(m.repeats, repeatWindow{iv: iv, reqs: reqs,
			start: clock.Stamp{MonoNS: iv.StartMonoNS, WallNS: clock.WallAt(iv.StartMonoNS)},
			end:   clock.Stamp{MonoNS: iv.EndMonoNS, WallNS: clock.WallAt(iv.EndMonoNS)}})
		m.passes = 1
	}
	for rep := 0; rep < repeats && spec.Workload.Load == nil; rep++ {
		rw := repeatWindow{}
		passStart := st.now()
		var repOut int64 // output tokens of the repeat so far, for the progress line
		for pass := 0; ; pass++ {
			for bi, batch := range bs {
				for _, s := range sessions {
					if s.meter.client == nil {
						continue
					}
					if _, err := s.meter.api.Mark(ctx, s.id, fmt.Sprintf("r%d/p%d/b%d", rep, pass, bi)); err != nil {
						return nil, fmt.Errorf("mark meter %s: %w", s.meter.ref.Name, err)
					}
				}
				if rep == 0 && pass == 0 && bi == 0 {
					st.pause(ctx, "window")
				}
				var got []results.Request
				bt, err := st.engine.Generate(ctx, sdk.GenerateRequest{Prompts: batch, Decoding: spec.Workload.Decoding}, func(r sdk.RequestResult) error {
					got = append(got, results.Request{ID: r.ID, Repeat: rep, InputTokens: r.InputTokens, OutputTokens: len(r.OutputIDs),
						StartMonoNS: r.StartMonoNS, TokenMonoNS: r.TokenMonoNS, OutputIDs: r.OutputIDs, FinishReason: r.FinishReason, Truncated: r.Truncated})
					return nil
				})
				if err != nil {
					return nil, fmt.Errorf("generate batch %d of repeat %d: %w", bi, rep+1, err)
				}
				if rw.iv.StartMonoNS == 0 {
					rw.iv.StartMonoNS = bt.StartMonoNS
					rw.start = clock.Stamp{MonoNS: bt.StartMonoNS, WallNS: clock.WallAt(bt.StartMonoNS)}
				}
				rw.iv.EndMonoNS = bt.EndMonoNS
				m.prefill = append(m.prefill, energy.Interval{StartMonoNS: bt.StartMonoNS, EndMonoNS: bt.FirstTokenMonoNS})
				m.decode = append(m.decode, energy.Interval{StartMonoNS: bt.FirstTokenMonoNS, EndMonoNS: bt.EndMonoNS})
				rw.reqs = append(rw.reqs, got...)
				_, _, out := counts(got)
				repOut += out
				done := min(len(spec.Prompts), (bi+1)*max(1, spec.Workload.BatchSize))
				elapsed := float64(st.now()-passStart) / 1e9
				st.w.Control.Progress(launch.Message{Phase: "measured", PromptsDone: done, PromptsTotal: len(spec.Prompts),
					TokensPerS: float64(repOut) / math.Max(elapsed, 1e-9), Detail: fmt.Sprintf("repeat %d/%d pass %d", rep+1, repeats, pass+1)})
			}
			if rep == 0 {
				m.passes = pass + 1
			}
			if float64(st.now()-passStart)/1e9 >= spec.Workload.MinWindowS {
				break
			}
		}
		rw.end = clock.Stamp{MonoNS: rw.iv.EndMonoNS, WallNS: clock.WallAt(rw.iv.EndMonoNS)}
		m.repeats = append(m.repeats, rw)
	}
	cpu1, ok1 := st.meterCPU()
	m.meterCPUNS, m.meterCPUOK = cpu1-cpu0, ok0 && ok1
	if err := sleep(ctx, wait.Seconds()); err != nil {
		return nil, err
	}
	stopped = true
	m.measurements = st.stopMeters(ctx, sessions)
	m.window = energy.Interval{StartMonoNS: m.repeats[0].iv.StartMonoNS, EndMonoNS: m.repeats[len(m.repeats)-1].iv.EndMonoNS}
	m.start, m.end = m.repeats[0].start, m.repeats[len(m.repeats)-1].end
	m.promptTokens = st.promptTokens(ctx, m.repeats)
	return m, nil
}

func (st *state) save(ctx context.Context) error {
	st.raw.CreatedUnixNS = time.Now().UnixNano()
	data, err := results.EncodeRaw(st.raw)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	hexSum := hex.EncodeToString(sum[:])
	if _, err := st.repo.SaveRaw(ctx, st.w.Spec.ExperimentID, st.w.Spec.Rank, data); err != nil {
		return fmt.Errorf("save raw result: %w", err)
	}
	if _, err := st.repo.MarkComplete(ctx, st.w.Spec.ExperimentID, st.w.Spec.Rank, hexSum); err != nil {
		return fmt.Errorf("mark rank %d complete: %w", st.w.Spec.Rank, err)
	}
	return nil
}
