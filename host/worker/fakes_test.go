package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/lemctl/lemctl/host/launch"
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/results/resultstest"
	"github.com/lemctl/lemctl/host/sysinfo"
	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/hostclient"
	"github.com/lemctl/lemctl/sdk/units"
)

// The lifecycle tests run a Worker against in-process plugins: fakes served over go-plugin's
// in-process gRPC connection (the adapters a plugin process uses), given to the worker through
// its open seam. Every timestamp comes from one fake monotonic clock that only the fakes
// advance, so durations, energies and counts are exact and independent of the machine's load.

// recorder is the ordered log of the calls the fakes and the control channel receive.
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf(format, args...))
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

// fakeClock is a monotonic clock in ns that moves only when a fake advances it.
type fakeClock struct {
	mu sync.Mutex
	ns int64
}

// clockStart is far from 0: the worker treats a zero timestamp as unset.
const clockStart = 1_000_000_000_000

func (c *fakeClock) now() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ns
}

func (c *fakeClock) advance(d time.Duration) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ns += int64(d)
	return c.ns
}

// fakeLoader resolves every reference to a small artifact with known FLOPs coefficients.
type fakeLoader struct {
	rec        *recorder
	resolveErr error
}

func (l *fakeLoader) Resolve(_ context.Context, ref string) (*sdk.Artifact, error) {
	l.rec.add("loader.Resolve %s", ref)
	if l.resolveErr != nil {
		return nil, l.resolveErr
	}
	return &sdk.Artifact{Reference: ref, Format: "fake", SHA256: strings.Repeat("ab", 32), Architecture: "fake",
		Parameters: 1000, FLOPs: sdk.FLOPsCoefficients{PerToken: 2000}, ContextLength: 1024, BOSTokenID: -1, PadTokenID: -1}, nil
}

func (l *fakeLoader) Tokenize(_ context.Context, _ string, texts []string) ([][]int32, error) {
	l.rec.add("loader.Tokenize %d", len(texts))
	out := make([][]int32, len(texts))
	for i, t := range texts {
		out[i] = make([]int32, len(strings.Fields(t)))
	}
	return out, nil
}

func (l *fakeLoader) Detokenize(_ context.Context, _ string, ids [][]int32) ([]string, error) {
	return make([]string, len(ids)), nil
}

// fakeEngine generates outTokens tokens per prompt, one every step of the fake clock; a prompt's
// input tokens are its words. A warm-up batch takes the next of warmLat (cycled).
type fakeEngine struct {
	rec       *recorder
	clk       *fakeClock
	outTokens int
	step      time.Duration
	warmLat   []time.Duration
	loadErr   error
	// failGenerate makes the n-th Generate call (1-based) fail; onGenerate runs at the start of
	// every call with its number.
	failGenerate int
	onGenerate   func(n int)

	mu        sync.Mutex
	warmups   int
	generates int
}

func (e *fakeEngine) Load(_ context.Context, req sdk.LoadRequest) (*sdk.LoadResult, error) {
	e.rec.add("engine.Load %s", req.Artifact.Reference)
	if e.loadErr != nil {
		return nil, e.loadErr
	}
	return &sdk.LoadResult{ModelBytes: 4096, ExecutionProvider: "fake"}, nil
}

func (e *fakeEngine) Warmup(_ context.Context, req sdk.WarmupRequest) ([]sdk.BatchTiming, error) {
	e.rec.add("engine.Warmup %d", req.Batches)
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []sdk.BatchTiming
	for i := 0; i < req.Batches; i++ {
		start := e.clk.now()
		end := e.clk.advance(e.warmLat[e.warmups%len(e.warmLat)])
		e.warmups++
		out = append(out, sdk.BatchTiming{StartMonoNS: start, FirstTokenMonoNS: start + 1, EndMonoNS: end, Requests: len(req.Prompts)})
	}
	return out, nil
}

func (e *fakeEngine) Generate(_ context.Context, req sdk.GenerateRequest, emit func(sdk.RequestResult) error) (*sdk.BatchTiming, error) {
	ids := make([]string, len(req.Prompts))
	for i, p := range req.Prompts {
		ids[i] = p.ID
	}
	e.rec.add("engine.Generate %s", strings.Join(ids, ","))
	e.mu.Lock()
	e.generates++
	n := e.generates
	e.mu.Unlock()
	if e.onGenerate != nil {
		e.onGenerate(n)
	}
	if n == e.failGenerate {
		return nil, errors.New("engine fell over")
	}
	start := e.clk.now()
	tokens := make([]int64, e.outTokens)
	for k := range tokens {
		tokens[k] = e.clk.advance(e.step)
	}
	bt := &sdk.BatchTiming{StartMonoNS: start, FirstTokenMonoNS: tokens[0], EndMonoNS: tokens[len(tokens)-1],
		Requests: len(req.Prompts), Steps: e.outTokens - 1}
	for i, p := range req.Prompts {
		in := len(strings.Fields(p.Text))
		bt.InputTokens += in
		bt.OutputTokens += e.outTokens
		if err := emit(sdk.RequestResult{ID: p.ID, Index: i, InputTokens: in, OutputIDs: make([]int32, e.outTokens),
			StartMonoNS: start, TokenMonoNS: tokens, FinishReason: "length"}); err != nil {
			return nil, err
		}
	}
	return bt, nil
}

func (e *fakeEngine) Unload(context.Context) error {
	e.rec.add("engine.Unload")
	return nil
}

// fakeMeter measures one GPU domain at a constant power (idleW in baseline sessions, powerW
// otherwise). Its samples lie every samplePeriod of the fake clock from the session's start, at
// every mark and at the stop, with cumulative energy = power × elapsed: exact integers of µJ. A
// baseline session lasts baselineDur of the fake clock (its Stop advances the clock).
type fakeMeter struct {
	rec           *recorder
	clk           *fakeClock
	name          string
	powerW, idleW int64
	samplePeriod  time.Duration
	baselineDur   time.Duration
	startErr      error // for window sessions
	stopErr       error // for window sessions

	mu       sync.Mutex
	n        int
	sessions map[string]*fakeSession
}

type fakeSession struct {
	label string
	t0    int64
	marks []sdk.Mark
}

func (m *fakeMeter) domain() sdk.Domain {
	return sdk.Domain{ID: m.name + "-gpu", Name: m.name, Kind: sdk.DomainGPU, Scope: sdk.ScopeDevice, Method: sdk.MethodCounter,
		Confidence: sdk.ConfidenceSimulated, Available: true}
}

func (m *fakeMeter) Inventory(context.Context) ([]sdk.Domain, error) {
	return []sdk.Domain{m.domain()}, nil
}

func (m *fakeMeter) Environment(context.Context) (*sdk.Environment, error) {
	m.rec.add("%s.Environment", m.name)
	return &sdk.Environment{Facts: map[string]string{"driver": "fake"}}, nil
}

func (m *fakeMeter) Start(_ context.Context, req sdk.StartRequest) (*sdk.Session, error) {
	m.rec.add("%s.Start %s", m.name, req.Label)
	if m.startErr != nil && req.Label != "baseline" {
		return nil, m.startErr
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n++
	id := fmt.Sprintf("%s-%d", req.Label, m.n)
	if m.sessions == nil {
		m.sessions = map[string]*fakeSession{}
	}
	s := &fakeSession{label: req.Label, t0: m.clk.now()}
	m.sessions[id] = s
	return &sdk.Session{ID: id, StartMonoNS: s.t0, Domains: []sdk.Domain{m.domain()}}, nil
}

func (m *fakeMeter) Mark(_ context.Context, session, label string) (int64, error) {
	m.rec.add("%s.Mark %s", m.name, label)
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.sessions[session]
	if s == nil {
		return 0, sdk.ErrNotFound
	}
	t := m.clk.now()
	s.marks = append(s.marks, sdk.Mark{Label: label, MonoNS: t})
	return t, nil
}

func (m *fakeMeter) Stop(_ context.Context, session string) (*sdk.Measurement, error) {
	m.mu.Lock()
	s := m.sessions[session]
	delete(m.sessions, session)
	m.mu.Unlock()
	if s == nil {
		return nil, sdk.ErrNotFound
	}
	m.rec.add("%s.Stop %s", m.name, s.label)
	if m.stopErr != nil && s.label != "baseline" {
		return nil, m.stopErr
	}
	power := m.powerW
	if s.label == "baseline" {
		power = m.idleW
		m.clk.advance(m.baselineDur)
	}
	t1 := m.clk.now()
	var ts []int64
	for t := s.t0; t < t1; t += int64(m.samplePeriod) {
		ts = append(ts, t)
	}
	for _, mk := range s.marks {
		ts = append(ts, mk.MonoNS)
	}
	ts = append(ts, t1)
	samples := make([]sdk.Sample, 0, len(ts))
	for _, t := range sortedUnique(ts) {
		// W × ns = 1e-3 µJ.
		samples = append(samples, sdk.Sample{MonoNS: t, Energy: units.Energy(power * (t - s.t0) / 1000)})
	}
	last := samples[len(samples)-1]
	return &sdk.Measurement{Session: session, StartMonoNS: s.t0, StopMonoNS: t1, Marks: s.marks,
		Domains: []sdk.DomainEnergy{{Domain: m.domain(), Energy: last.Energy, Samples: samples, CounterUpdates: len(samples) - 1}}}, nil
}

func sortedUnique(ts []int64) []int64 {
	for i := 1; i < len(ts); i++ {
		for j := i; j > 0 && ts[j] < ts[j-1]; j-- {
			ts[j], ts[j-1] = ts[j-1], ts[j]
		}
	}
	out := ts[:0]
	for i, t := range ts {
		if i == 0 || t != ts[i-1] {
			out = append(out, t)
		}
	}
	return out
}

// fakeRepo is the in-memory repository with its writes recorded and failable.
type fakeRepo struct {
	*resultstest.Memory
	rec              *recorder
	saveErr, markErr error
}

func (r *fakeRepo) SaveRaw(ctx context.Context, exp string, rank int, data []byte) (*sdk.Stored, error) {
	r.rec.add("repo.SaveRaw %s %d", exp, rank)
	if r.saveErr != nil {
		return nil, r.saveErr
	}
	return r.Memory.SaveRaw(ctx, exp, rank, data)
}

func (r *fakeRepo) MarkComplete(ctx context.Context, exp string, rank int, sum string) (*sdk.Marker, error) {
	r.rec.add("repo.MarkComplete %s %d", exp, rank)
	if r.markErr != nil {
		return nil, r.markErr
	}
	return r.Memory.MarkComplete(ctx, exp, rank, sum)
}

// fakeControl is a one-worker control channel: every barrier releases at once, except failAt.
type fakeControl struct {
	rec     *recorder
	failAt  string
	failErr error
}

func (c *fakeControl) Barrier(_ context.Context, name string) error {
	c.rec.add("barrier %s", name)
	if name == c.failAt {
		return c.failErr
	}
	return nil
}

func (c *fakeControl) Progress(launch.Message) {}

func (c *fakeControl) Heartbeat(launch.Message) {}

// recControl records the barriers a real control channel is asked for.
type recControl struct {
	Control
	rec *recorder
}

func (c recControl) Barrier(ctx context.Context, name string) error {
	c.rec.add("barrier %s", name)
	return c.Control.Barrier(ctx, name)
}

// rig is one worker with its in-process plugins, ready to run; a test changes the fakes or the
// spec before run.
type rig struct {
	t      *testing.T
	rec    *recorder
	clk    *fakeClock
	loader *fakeLoader
	engine *fakeEngine
	// serving, when set, is the engine plugin instead of engine (a continuous-batching fake).
	serving sdk.Engine
	meters  []*fakeMeter
	repo    *fakeRepo
	ctl     Control
	spec    *launch.Spec
}

const testExp = "exp-1"

// newRig: 5 prompts of 1..5 words in batches of 2 (3 batches), 4 output tokens per prompt at 10
// ms per token, one meter at 150 W (idle 50 W), one repeat, no baseline, no warm-up.
func newRig(t *testing.T, rank int, repo *resultstest.Memory) *rig {
	rec, clk := &recorder{}, &fakeClock{ns: clockStart}
	r := &rig{t: t, rec: rec, clk: clk,
		loader: &fakeLoader{rec: rec},
		engine: &fakeEngine{rec: rec, clk: clk, outTokens: 4, step: 10 * time.Millisecond, warmLat: []time.Duration{10 * time.Millisecond}},
		repo:   &fakeRepo{Memory: repo, rec: rec},
	}
	r.ctl = &fakeControl{rec: rec}
	r.addMeter("m1", 150, 50)
	var prompts []sdk.Prompt
	for i := 0; i < 5; i++ {
		prompts = append(prompts, sdk.Prompt{ID: fmt.Sprintf("p%d", i), Text: strings.TrimSpace(strings.Repeat("w ", i+1))})
	}
	r.spec = &launch.Spec{ExperimentID: testExp, Rank: rank, WorldSize: 1, Device: launch.DeviceSlot{Kind: "cpu", Slot: "cpu:0"},
		Model:      launch.ModelSpec{Ref: "fake-model", Loader: launch.PluginRef{Name: "loader"}},
		Engine:     launch.PluginRef{Name: "engine"},
		Repository: launch.PluginRef{Name: "repo"},
		Dataset:    launch.DatasetRef{Name: "words", Prompts: 5, Records: 5},
		Prompts:    prompts,
		Workload:   launch.WorkloadSpec{BatchSize: 2, Repeats: 1, Decoding: sdk.Decoding{MaxNewTokens: 4, Greedy: true}},
		Lifecycle:  launch.LifecycleSpec{WarmupMode: "fixed"},
		Validity:   launch.ValiditySpec{MinWindowS: 0.1, MinCounterUpdates: 10},
	}
	return r
}

func (r *rig) addMeter(name string, powerW, idleW int64) *fakeMeter {
	m := &fakeMeter{rec: r.rec, clk: r.clk, name: name, powerW: powerW, idleW: idleW, samplePeriod: 5 * time.Millisecond, baselineDur: time.Second}
	r.meters = append(r.meters, m)
	return m
}

// serve serves p over an in-process gRPC connection and returns the host's client.
func serve(t *testing.T, p *sdk.Plugin) (*hostclient.Client, error) {
	c, err := hostclient.InProcess(context.Background(), p)
	if err == nil {
		t.Cleanup(c.Close)
	}
	return c, err
}

// open is the worker's open seam: the fake of ref's name, in-process.
func (r *rig) open(_ context.Context, ref launch.PluginRef, kind sdk.Kind) (*hostclient.Client, error) {
	p := &sdk.Plugin{Name: ref.Name, Version: "0.0.1"}
	switch {
	case kind == sdk.KindLoader && ref.Name == "loader":
		p.Loader = r.loader
	case kind == sdk.KindEngine && ref.Name == "engine" && r.serving != nil:
		p.Engine = r.serving
	case kind == sdk.KindEngine && ref.Name == "engine":
		p.Engine = r.engine
	case kind == sdk.KindRepository && ref.Name == "repo":
		p.Repository = r.repo
	case kind == sdk.KindEnergy:
		for _, m := range r.meters {
			if m.name == ref.Name {
				p.Energy = m
			}
		}
	}
	if len(p.Kinds()) == 0 {
		return nil, fmt.Errorf("no fake %s plugin %q", kind, ref.Name)
	}
	return serve(r.t, p)
}

func (r *rig) worker() *Worker {
	r.spec.Meters = nil
	for _, m := range r.meters {
		r.spec.Meters = append(r.spec.Meters, launch.PluginRef{Name: m.name})
	}
	sys := &sysinfo.Reader{FS: fstest.MapFS{"proc/sys/kernel/random/boot_id": {Data: []byte("boot-1\n")}},
		Hostname: func() (string, error) { return "testhost", nil }}
	log := hclog.New(&hclog.LoggerOptions{Output: io.Discard})
	return &Worker{Spec: r.spec, Control: r.ctl, Log: log, Sys: sys, open: r.open, mono: r.clk.now}
}

// run runs the worker to its end.
func (r *rig) run(ctx context.Context) error { return r.worker().Run(ctx) }

// saved decodes the raw result the worker stored, failing when it stored none or left it
// without its completion marker.
func (r *rig) saved() *results.Raw {
	r.t.Helper()
	ents, err := r.repo.ListRaw(context.Background(), testExp)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, e := range ents {
		if e.Rank != r.spec.Rank {
			continue
		}
		if e.Marker == nil || e.Marker.SHA256 != e.SHA256 {
			r.t.Fatalf("rank %d: raw result stored without a matching completion marker: %+v", e.Rank, e)
		}
		b, err := r.repo.LoadRaw(context.Background(), testExp, e.Rank)
		if err != nil {
			r.t.Fatal(err)
		}
		raw, err := results.DecodeRaw(b)
		if err != nil {
			r.t.Fatal(err)
		}
		return raw
	}
	r.t.Fatalf("rank %d stored no raw result", r.spec.Rank)
	return nil
}

// nothingSaved fails unless the repository holds no raw result and no marker of the experiment.
func (r *rig) nothingSaved() {
	r.t.Helper()
	if ents, err := r.repo.ListRaw(context.Background(), testExp); err == nil {
		r.t.Fatalf("a failed worker stored results: %+v", ents)
	}
}
