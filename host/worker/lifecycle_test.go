package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lemctl/lemctl/host/launch"
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/results/resultstest"
)

func near(got *float64, want float64) bool { return got != nil && math.Abs(*got-want) < 1e-9 }

func fmtp(p *float64) string {
	if p == nil {
		return "null"
	}
	return fmt.Sprint(*p)
}

func codes(raw *results.Raw) []string {
	out := []string{}
	for _, f := range raw.Validity.Findings {
		out = append(out, f.Code)
	}
	return out
}

func finding(raw *results.Raw, code string) *results.Finding {
	for i, f := range raw.Validity.Findings {
		if f.Code == code {
			return &raw.Validity.Findings[i]
		}
	}
	return nil
}

// window is the calls of the measured window: per repeat, pass and batch, a Mark on every
// meter and then the batch's Generate.
func window(meters []string, repeats, passes int, batches ...string) []string {
	var out []string
	for r := 0; r < repeats; r++ {
		for p := 0; p < passes; p++ {
			for b, ids := range batches {
				for _, m := range meters {
					out = append(out, fmt.Sprintf("%s.Mark r%d/p%d/b%d", m, r, p, b))
				}
				out = append(out, "engine.Generate "+ids)
			}
		}
	}
	return out
}

func diffCalls(t *testing.T, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("calls in this order:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestLifecyclePhaseOrder runs a whole lifecycle with a baseline, a fixed warm-up, two meters
// and two repeats, and checks every call the plugins and the control channel receive, in order,
// and the figures the result holds: the fakes make each of them exact.
func TestLifecyclePhaseOrder(t *testing.T) {
	r := newRig(t, 0, resultstest.NewMemory())
	r.addMeter("m2", 100, 20)
	r.spec.Lifecycle.BaselineS = 0.001
	r.spec.Lifecycle.WarmupBatch = 2
	r.spec.Workload.Repeats = 2
	if err := r.run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"m1.Environment", "m2.Environment",
		"barrier baseline",
		"m1.Start baseline", "m2.Start baseline", "m1.Stop baseline", "m2.Stop baseline",
		"barrier load",
		"loader.Resolve fake-model", "engine.Load fake-model",
		"engine.Warmup 2",
		"barrier window",
		"m1.Start window", "m2.Start window",
	}
	want = append(want, window([]string{"m1", "m2"}, 2, 1, "p0,p1", "p2,p3", "p4")...)
	want = append(want, "m1.Stop window", "m2.Stop window", "engine.Unload", "repo.SaveRaw exp-1 0", "repo.MarkComplete exp-1 0")
	diffCalls(t, r.rec.list(), want)

	raw := r.saved()
	var phases []string
	for p := range raw.Window.Phases {
		phases = append(phases, p)
	}
	sort.Strings(phases)
	if !slices.Equal(phases, []string{"environment", "idle_baseline", "load", "measured", "plugins", "warmup"}) {
		t.Errorf("phase spans %v", phases)
	}
	// 5 prompts of 1..5 words, 4 tokens each, twice.
	wl := raw.Workload
	if wl.Repeats != 2 || wl.Passes != 1 || wl.Requests != 10 || wl.InputTokens != 30 || wl.OutputTokens != 40 {
		t.Errorf("workload %+v, want 2 repeats of 1 pass, 10 requests, 30 input and 40 output tokens", wl)
	}
	// 6 batches of 4 tokens at 10 ms: a 240 ms window; 150 W + 100 W over it.
	if d := raw.Window.Span.DurationS; math.Abs(d-0.24) > 1e-9 {
		t.Errorf("window %v s, want 0.24", d)
	}
	e := raw.Energy
	if !near(e.TotalJ, 60) || !near(e.JPerOutputToken, 1.5) {
		t.Errorf("energy %s J, %s J/token; want 60 J (36 + 24), 1.5 J/token", fmtp(e.TotalJ), fmtp(e.JPerOutputToken))
	}
	// Idle 50 W + 20 W from the baseline: 16.8 J static.
	if !near(e.StaticJ, 16.8) || !near(e.DynamicJ, 43.2) {
		t.Errorf("static %s J, dynamic %s J; want 16.8 and 43.2", fmtp(e.StaticJ), fmtp(e.DynamicJ))
	}
	// Prefill is the first token's 10 ms of each batch, decode the other 30 ms: 250 W × 60/180 ms.
	if !near(e.Phases.PrefillJ, 15) || !near(e.Phases.DecodeJ, 45) {
		t.Errorf("prefill %s J, decode %s J; want 15 and 45", fmtp(e.Phases.PrefillJ), fmtp(e.Phases.DecodeJ))
	}
	for _, d := range e.Domains {
		idle := map[string]float64{"m1-gpu": 50, "m2-gpu": 20}[d.ID]
		if !d.Counted || !near(d.IdlePowerW, idle) {
			t.Errorf("domain %s: counted %v, idle %s W, want counted at %g W", d.ID, d.Counted, fmtp(d.IdlePowerW), idle)
		}
	}
	if len(raw.Repeats) != 2 {
		t.Fatalf("%d repeat entries, want 2", len(raw.Repeats))
	}
	for i, rep := range raw.Repeats {
		if rep.Index != i || rep.Requests != 5 || rep.InputTokens != 15 || rep.OutputTokens != 20 || !near(rep.EnergyJ, 30) {
			t.Errorf("repeat %d: %+v energy %s, want 5 requests, 15 in, 20 out, 30 J", i, rep, fmtp(rep.EnergyJ))
		}
	}
	// 2000 FLOPs per token over every input token and every output token but the last.
	if !near(raw.FLOPs.Total, 2000*(30+30)) {
		t.Errorf("FLOPs %s, want %d", fmtp(raw.FLOPs.Total), 2000*60)
	}
	if got := codes(raw); len(got) != 0 || !raw.Validity.Valid {
		t.Errorf("findings %v (valid %v), want none", got, raw.Validity.Valid)
	}
	if raw.Rank != 0 || raw.ExperimentID != testExp || raw.Host.Hostname != "testhost" || raw.Model.SHA256 != strings.Repeat("ab", 32) {
		t.Errorf("identity: rank %d, experiment %q, host %+v, model %+v", raw.Rank, raw.ExperimentID, raw.Host, raw.Model)
	}
}

// TestLifecycleBaseline: no baseline session when baseline_s is 0, and the result says so with
// baseline_missing instead of a static/dynamic split.
func TestLifecycleBaseline(t *testing.T) {
	r := newRig(t, 0, resultstest.NewMemory())
	if err := r.run(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, c := range r.rec.list() {
		if strings.HasSuffix(c, " baseline") && c != "barrier baseline" {
			t.Errorf("baseline_s = 0 but the meter got %q", c)
		}
	}
	raw := r.saved()
	e := raw.Energy
	// 3 batches of 40 ms at 150 W.
	if !near(e.TotalJ, 18) || e.StaticJ != nil || e.DynamicJ != nil || e.Domains[0].IdlePowerW != nil {
		t.Errorf("energy total %s static %s dynamic %s idle %s; want 18 J and no split", fmtp(e.TotalJ), fmtp(e.StaticJ), fmtp(e.DynamicJ), fmtp(e.Domains[0].IdlePowerW))
	}
	if got := codes(raw); !slices.Equal(got, []string{"baseline_missing"}) {
		t.Errorf("findings %v, want [baseline_missing]", got)
	}
}

// TestLifecycleWarmupBounds: each warm-up mode and bound sends the engine the batches it should,
// and a warm-up a bound stopped is a warmup_not_converged finding naming that bound. The fake
// clock advances by each batch's latency, so the time bound is exact.
func TestLifecycleWarmupBounds(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name    string
		lc      launch.LifecycleSpec
		lat     []time.Duration
		calls   []string
		message string // of warmup_not_converged; "" when there must be none
	}{
		{"cv stops at max_batches", launch.LifecycleSpec{WarmupMode: "cv", CVThreshold: 0.05, CVWindow: 3, MinBatches: 2, MaxBatches: 4},
			[]time.Duration{10 * ms, 20 * ms}, []string{"engine.Warmup 1", "engine.Warmup 1", "engine.Warmup 1", "engine.Warmup 1"},
			"warm-up stopped by lifecycle.warmup.max_batches = 4 after 4 batches in 0.1 s with batch-latency CV 0.346 over the last 3 batches, target below 0.05"},
		{"cv stops at max_s", launch.LifecycleSpec{WarmupMode: "cv", CVThreshold: 0.05, CVWindow: 3, MinBatches: 1, MaxBatches: 100, WarmupMaxS: 0.05},
			[]time.Duration{20 * ms, 40 * ms}, []string{"engine.Warmup 1", "engine.Warmup 1"},
			"warm-up stopped by lifecycle.warmup.max_s = 0.05 s after 2 batches in 0.1 s with no CV yet (fewer than lifecycle.warmup.window = 3 batches ran)"},
		{"cv converges", launch.LifecycleSpec{WarmupMode: "cv", CVThreshold: 0.05, CVWindow: 3, MinBatches: 3, MaxBatches: 10, WarmupMaxS: 60},
			[]time.Duration{10 * ms}, []string{"engine.Warmup 1", "engine.Warmup 1", "engine.Warmup 1"}, ""},
		{"fixed", launch.LifecycleSpec{WarmupMode: "fixed", WarmupBatch: 3}, []time.Duration{10 * ms}, []string{"engine.Warmup 3"}, ""},
		{"fixed none", launch.LifecycleSpec{WarmupMode: "fixed"}, []time.Duration{10 * ms}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, 0, resultstest.NewMemory())
			r.spec.Lifecycle = tc.lc
			r.engine.warmLat = tc.lat
			if err := r.run(context.Background()); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range r.rec.list() {
				if strings.HasPrefix(c, "engine.Warmup") {
					got = append(got, c)
				}
			}
			diffCalls(t, got, tc.calls)
			raw := r.saved()
			f, want := finding(raw, "warmup_not_converged"), []string{"baseline_missing"}
			if tc.message != "" {
				want = append(want, "warmup_not_converged")
				if f == nil || !strings.HasPrefix(f.Message, tc.message) || f.Severity != results.SeverityWarning {
					t.Errorf("warmup_not_converged %+v, want a warning starting %q", f, tc.message)
				}
			}
			if got := codes(raw); !slices.Equal(got, want) {
				t.Errorf("findings %v, want %v", got, want)
			}
		})
	}
}

// TestLifecycleRepeatsAndPasses: with workload.min_window_s longer than one pass over the shard,
// each of the N repeats runs passes until it lasts that long, and the result has N repeat
// entries with the tokens of their own passes.
func TestLifecycleRepeatsAndPasses(t *testing.T) {
	r := newRig(t, 0, resultstest.NewMemory())
	r.spec.Workload.Repeats = 3
	r.spec.Workload.MinWindowS = 0.3 // a pass is 120 ms: 3 passes per repeat
	if err := r.run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range r.rec.list() {
		if strings.HasPrefix(c, "m1.Mark") || strings.HasPrefix(c, "engine.Generate") {
			got = append(got, c)
		}
	}
	diffCalls(t, got, window([]string{"m1"}, 3, 3, "p0,p1", "p2,p3", "p4"))
	raw := r.saved()
	if wl := raw.Workload; wl.Repeats != 3 || wl.Passes != 3 || wl.Requests != 45 || wl.InputTokens != 135 || wl.OutputTokens != 180 {
		t.Errorf("workload %+v, want 3 repeats of 3 passes: 45 requests, 135 input and 180 output tokens", wl)
	}
	if len(raw.Repeats) != 3 {
		t.Fatalf("%d repeat entries, want 3", len(raw.Repeats))
	}
	for i, rep := range raw.Repeats {
		// 9 batches of 40 ms at 150 W.
		if rep.Index != i || rep.Requests != 15 || rep.InputTokens != 45 || rep.OutputTokens != 60 || !near(rep.EnergyJ, 54) ||
			math.Abs(rep.Window.DurationS-0.36) > 1e-9 {
			t.Errorf("repeat %d: %+v energy %s, want 15 requests, 45 in, 60 out, 0.36 s, 54 J", i, rep, fmtp(rep.EnergyJ))
		}
	}
	if !near(raw.Energy.TotalJ, 162) {
		t.Errorf("total %s J, want 162", fmtp(raw.Energy.TotalJ))
	}
}

// TestLifecycleFailures: each failure ends the worker with an error naming what failed, stops
// the meter sessions it opened, and leaves no completion marker; a meter that fails to stop is a
// warning and its domain is missing, never zero.
func TestLifecycleFailures(t *testing.T) {
	front := []string{"m1.Environment", "barrier baseline", "barrier load", "loader.Resolve fake-model", "engine.Load fake-model", "barrier window"}
	t.Run("generate fails mid-window", func(t *testing.T) {
		r := newRig(t, 0, resultstest.NewMemory())
		r.engine.failGenerate = 2
		err := r.run(context.Background())
		if err == nil || !strings.Contains(err.Error(), "measured: generate batch 1 of repeat 1: ") || !strings.Contains(err.Error(), "engine fell over") {
			t.Fatalf("error %v, want the window's failed batch", err)
		}
		want := append(append([]string{}, front...), "m1.Start window", "m1.Mark r0/p0/b0", "engine.Generate p0,p1", "m1.Mark r0/p0/b1", "engine.Generate p2,p3", "m1.Stop window")
		diffCalls(t, r.rec.list(), want)
		r.nothingSaved()
	})
	t.Run("meter start fails", func(t *testing.T) {
		r := newRig(t, 0, resultstest.NewMemory())
		r.addMeter("m2", 100, 20).startErr = errors.New("sensor gone")
		err := r.run(context.Background())
		if err == nil || !strings.Contains(err.Error(), "measured: start meter m2: ") || !strings.Contains(err.Error(), "sensor gone") {
			t.Fatalf("error %v, want the meter that failed to start", err)
		}
		want := []string{"m1.Environment", "m2.Environment", "barrier baseline", "barrier load", "loader.Resolve fake-model", "engine.Load fake-model", "barrier window",
			"m1.Start window", "m2.Start window", "m1.Stop window"}
		diffCalls(t, r.rec.list(), want)
		r.nothingSaved()
	})
	t.Run("meter stop fails", func(t *testing.T) {
		r := newRig(t, 0, resultstest.NewMemory())
		r.meters[0].stopErr = errors.New("sensor gone")
		if err := r.run(context.Background()); err != nil {
			t.Fatal(err)
		}
		raw := r.saved()
		if len(raw.Warnings) != 1 || !strings.Contains(raw.Warnings[0].Message, "stop meter m1: ") || !strings.Contains(raw.Warnings[0].Message, "sensor gone") {
			t.Errorf("warnings %+v, want the meter that failed to stop", raw.Warnings)
		}
		if got := codes(raw); raw.Energy.TotalJ != nil || !slices.Equal(got, []string{"no_energy_measured"}) {
			t.Errorf("energy %s J, findings %v; want no energy and [no_energy_measured]", fmtp(raw.Energy.TotalJ), got)
		}
		if raw.Workload.OutputTokens != 20 {
			t.Errorf("output tokens %d, want 20", raw.Workload.OutputTokens)
		}
	})
	t.Run("save fails", func(t *testing.T) {
		r := newRig(t, 0, resultstest.NewMemory())
		r.repo.saveErr = errors.New("disk full")
		err := r.run(context.Background())
		if err == nil || !strings.Contains(err.Error(), "save raw result: ") || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("error %v, want the failed save", err)
		}
		if calls := r.rec.list(); calls[len(calls)-1] != "repo.SaveRaw exp-1 0" {
			t.Errorf("last call %q, want the SaveRaw (no marker after a failed save)", calls[len(calls)-1])
		}
		r.nothingSaved()
	})
	t.Run("marker fails", func(t *testing.T) {
		r := newRig(t, 0, resultstest.NewMemory())
		r.repo.markErr = errors.New("disk full")
		err := r.run(context.Background())
		if err == nil || !strings.Contains(err.Error(), "mark rank 0 complete: ") || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("error %v, want the failed marker", err)
		}
		ents, lerr := r.repo.ListRaw(context.Background(), testExp)
		if lerr != nil || len(ents) != 1 || ents[0].Marker != nil {
			t.Errorf("stored %+v (%v), want the raw result without a marker", ents, lerr)
		}
	})
	t.Run("load fails", func(t *testing.T) {
		r := newRig(t, 0, resultstest.NewMemory())
		r.engine.loadErr = errors.New("out of memory")
		err := r.run(context.Background())
		if err == nil || !strings.Contains(err.Error(), "load: load model on cpu:0: ") || !strings.Contains(err.Error(), "out of memory") {
			t.Fatalf("error %v, want the failed load", err)
		}
		diffCalls(t, r.rec.list(), front[:5])
		r.nothingSaved()
	})
	t.Run("barrier fails", func(t *testing.T) {
		r := newRig(t, 0, resultstest.NewMemory())
		r.ctl = &fakeControl{rec: r.rec, failAt: launch.BarrierWindow, failErr: fmt.Errorf("%w: rank 1 failed", launch.ErrAborted)}
		err := r.run(context.Background())
		if !errors.Is(err, launch.ErrAborted) || !strings.Contains(err.Error(), "barrier window: ") {
			t.Fatalf("error %v, want the aborted window barrier", err)
		}
		diffCalls(t, r.rec.list(), front)
		r.nothingSaved()
	})
	t.Run("interrupted mid-window", func(t *testing.T) {
		r := newRig(t, 0, resultstest.NewMemory())
		ctx, cancel := context.WithCancelCause(context.Background())
		defer cancel(nil)
		r.engine.onGenerate = func(n int) {
			if n == 2 {
				cancel(launch.ErrStopped)
			}
		}
		err := r.run(ctx)
		if !errors.Is(err, launch.ErrStopped) {
			t.Fatalf("error %v, want launch.ErrStopped (exit 130)", err)
		}
		calls := r.rec.list()
		if !slices.Contains(calls, "m1.Stop window") || slices.Contains(calls, "engine.Generate p4") || slices.Contains(calls, "repo.SaveRaw exp-1 0") {
			t.Errorf("calls %v: want the window's session stopped, no batch after the interrupt and nothing saved", calls)
		}
		r.nothingSaved()
	})
}

// pipeWorker runs a rig as a worker goroutine connected to a launch.Coordinator by pipes, with
// the worker side of the control channel a worker process uses.
type pipeWorker struct {
	rank   int
	parent *launch.Conn
	exit   chan int
	err    error
	cancel context.CancelCauseFunc
}

func (p *pipeWorker) Rank() int          { return p.rank }
func (p *pipeWorker) Conn() *launch.Conn { return p.parent }
func (p *pipeWorker) Interrupt() error   { p.cancel(launch.ErrStopped); return nil }
func (p *pipeWorker) Kill() error        { p.cancel(launch.ErrStopped); return nil }
func (p *pipeWorker) Wait() (int, error) { return <-p.exit, nil }
func (p *pipeWorker) Pid() int           { return 0 }
func (p *pipeWorker) LogPath() string    { return fmt.Sprintf("rank%d.log", p.rank) }

func startPipeWorker(r *rig) *pipeWorker {
	toWorkerR, toWorkerW := io.Pipe()
	toParentR, toParentW := io.Pipe()
	ctx, cancel := context.WithCancelCause(context.Background())
	p := &pipeWorker{rank: r.spec.Rank, parent: launch.NewConn(toParentR, toWorkerW), exit: make(chan int, 1), cancel: cancel}
	conn := launch.NewConn(toWorkerR, toParentW)
	ws := launch.NewWorkerSide(conn, r.spec.Rank, cancel)
	r.ctl = recControl{Control: ws, rec: r.rec}
	w := r.worker() // built here, not in the goroutine: the test's t is not for other goroutines to use after it ends
	go func() {
		p.err = w.Run(ctx)
		code := 0
		if p.err != nil {
			ws.Failed(p.err)
			code = 1
		} else {
			ws.Done()
		}
		conn.Close()
		p.exit <- code
	}()
	return p
}

// TestLifecycleTwoWorkers runs two workers against the parent's coordinator over the real
// control channel: both pass the three barriers and store results with markers; when one fails
// after the load barrier, the other never opens its window (it cannot pass the window barrier),
// ends with launch.ErrAborted, and neither leaves a marker.
func TestLifecycleTwoWorkers(t *testing.T) {
	two := func(t *testing.T, repo *resultstest.Memory) [2]*rig {
		var rs [2]*rig
		for rank := range rs {
			rs[rank] = newRig(t, rank, repo)
			rs[rank].spec.WorldSize = 2
		}
		return rs
	}
	coordinate := func(rs [2]*rig) ([]launch.Outcome, [2]*pipeWorker) {
		var ps [2]*pipeWorker
		for i, r := range rs {
			ps[i] = startPipeWorker(r)
		}
		out, _ := (&launch.Coordinator{Workers: []launch.Worker{ps[0], ps[1]}}).Run(context.Background())
		return out, ps
	}
	t.Run("both pass", func(t *testing.T) {
		repo := resultstest.NewMemory()
		rs := two(t, repo)
		out, ps := coordinate(rs)
		for i, o := range out {
			if o.ExitCode != 0 || !o.Done || ps[i].err != nil {
				t.Errorf("rank %d: %+v (%v)", o.Rank, o, ps[i].err)
			}
		}
		for _, r := range rs {
			var barriers []string
			for _, c := range r.rec.list() {
				if strings.HasPrefix(c, "barrier ") {
					barriers = append(barriers, c)
				}
			}
			diffCalls(t, barriers, []string{"barrier baseline", "barrier load", "barrier window"})
			if raw := r.saved(); raw.Rank != r.spec.Rank || raw.WorldSize != 2 || raw.Workload.OutputTokens != 20 {
				t.Errorf("rank %d stored rank %d of %d with %d output tokens", r.spec.Rank, raw.Rank, raw.WorldSize, raw.Workload.OutputTokens)
			}
		}
	})
	t.Run("one fails after the load barrier", func(t *testing.T) {
		repo := resultstest.NewMemory()
		rs := two(t, repo)
		rs[1].loader.resolveErr = errors.New("no such model")
		out, ps := coordinate(rs)
		if err := ps[1].err; err == nil || !strings.Contains(err.Error(), "load: resolve model \"fake-model\": ") {
			t.Errorf("rank 1: %v, want its failed load", err)
		}
		if err := ps[0].err; !errors.Is(err, launch.ErrAborted) {
			t.Errorf("rank 0: %v, want launch.ErrAborted", err)
		}
		for _, o := range out {
			if o.ExitCode == 0 || o.Done {
				t.Errorf("rank %d: %+v, want a failure", o.Rank, o)
			}
		}
		for _, c := range rs[0].rec.list() {
			if c == "m1.Start window" || strings.HasPrefix(c, "engine.Generate") || strings.HasPrefix(c, "repo.") {
				t.Errorf("rank 0 went on past the window barrier: %q", c)
			}
		}
		rs[0].nothingSaved()
	})
}
