package worker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lemctl/lemctl/host/launch"
	"github.com/lemctl/lemctl/host/results"
)

// fakeWarmup is an engine whose batches take the given latencies (cycled) while a fake clock
// advances step per batch: no sleeping, no dependence on the machine's load.
type fakeWarmup struct {
	now     int64
	step    time.Duration
	lat     []float64
	batches int
	reports []launch.WarmupProgress
}

func (f *fakeWarmup) clock() int64 { return f.now }

func (f *fakeWarmup) batch(context.Context) ([]float64, error) {
	f.now += int64(f.step)
	l := f.lat[f.batches%len(f.lat)]
	f.batches++
	return []float64{l}, nil
}

func (f *fakeWarmup) report(p launch.WarmupProgress) { f.reports = append(f.reports, p) }

func (f *fakeWarmup) run(t *testing.T, b warmupBounds) warmupOutcome {
	t.Helper()
	out, err := cvWarmup(context.Background(), b, f.clock, f.batch, f.report)
	if err != nil {
		t.Fatal(err)
	}
	if out.Batches != f.batches || len(f.reports) != f.batches {
		t.Errorf("outcome says %d batches, the engine ran %d, %d progress reports", out.Batches, f.batches, len(f.reports))
	}
	return out
}

// TestWarmupStopsAtMaxBatches: latencies that never settle (CV ≈ 0.33) stop at max_batches, and
// the warning says so with the CV reached.
func TestWarmupStopsAtMaxBatches(t *testing.T) {
	f := &fakeWarmup{step: time.Second, lat: []float64{1e8, 2e8}}
	b := warmupBounds{TargetCV: 0.05, Window: 3, MinBatches: 3, MaxBatches: 5, MaxS: 60}
	out := f.run(t, b)
	if out.Converged || out.StoppedBy != "lifecycle.warmup.max_batches" || out.Batches != 5 || out.Elapsed != 5*time.Second {
		t.Fatalf("outcome %+v, want 5 batches in 5 s stopped by max_batches", out)
	}
	// The last 3 of 1,2,1,2,1 (×1e8): mean 4/3, sample std √(1/3) → CV 0.433.
	if out.CV == nil || *out.CV < 0.432 || *out.CV > 0.434 {
		t.Errorf("CV %v, want 0.433", out.CV)
	}
	fd := out.finding(b)
	if fd == nil || fd.Code != "warmup_not_converged" || fd.Severity != results.SeverityWarning {
		t.Fatalf("finding %+v, want a warmup_not_converged warning", fd)
	}
	for _, want := range []string{"lifecycle.warmup.max_batches = 5", "after 5 batches in 5.0 s", "CV 0.433 over the last 3 batches", "target below 0.05"} {
		if !strings.Contains(fd.Message, want) {
			t.Errorf("message %q lacks %q", fd.Message, want)
		}
	}
	// Progress after every batch: batch n of 5, no CV before the window is full.
	last := f.reports[len(f.reports)-1]
	if f.reports[0].Batch != 1 || f.reports[0].CV != nil || f.reports[1].CV != nil || f.reports[2].CV == nil ||
		last.Batch != 5 || last.MaxBatches != 5 || last.TargetCV != 0.05 || last.ElapsedS != 5 || last.MaxS != 60 {
		t.Errorf("progress reports %+v", f.reports)
	}
}

// TestWarmupStopsAtMaxS: with 10 s batches and max_s 25, no batch starts after 30 s: three batches,
// stopped by the time bound although max_batches (20) was far away.
func TestWarmupStopsAtMaxS(t *testing.T) {
	f := &fakeWarmup{step: 10 * time.Second, lat: []float64{1e8, 2e8}}
	b := warmupBounds{TargetCV: 0.05, Window: 3, MinBatches: 3, MaxBatches: 20, MaxS: 25}
	out := f.run(t, b)
	if out.Converged || out.StoppedBy != "lifecycle.warmup.max_s" || out.Batches != 3 {
		t.Fatalf("outcome %+v, want 3 batches stopped by max_s", out)
	}
	fd := out.finding(b)
	if fd == nil || !strings.Contains(fd.Message, "lifecycle.warmup.max_s = 25 s after 3 batches in 30.0 s") {
		t.Fatalf("finding %+v, want one naming max_s = 25 s, 3 batches, 30.0 s", fd)
	}
}

// TestWarmupTimeBoundBeforeMinBatches: the time bound is hard even before min_batches, and a CV
// not yet computed is said so.
func TestWarmupTimeBoundBeforeMinBatches(t *testing.T) {
	f := &fakeWarmup{step: 10 * time.Second, lat: []float64{1e8}}
	b := warmupBounds{TargetCV: 0.05, Window: 3, MinBatches: 5, MaxBatches: 20, MaxS: 15}
	out := f.run(t, b)
	if out.Converged || out.StoppedBy != "lifecycle.warmup.max_s" || out.Batches != 2 || out.CV != nil {
		t.Fatalf("outcome %+v, want 2 batches, no CV, stopped by max_s", out)
	}
	if fd := out.finding(b); fd == nil || !strings.Contains(fd.Message, "no CV yet (fewer than lifecycle.warmup.window = 3 batches ran)") {
		t.Errorf("finding %+v", fd)
	}
}

// TestWarmupConverges: steady latencies stop at min_batches with no finding; max_s 0 is no bound.
func TestWarmupConverges(t *testing.T) {
	f := &fakeWarmup{step: time.Hour, lat: []float64{1e8}}
	b := warmupBounds{TargetCV: 0.05, Window: 3, MinBatches: 4, MaxBatches: 20}
	out := f.run(t, b)
	if !out.Converged || out.Batches != 4 || out.StoppedBy != "" || out.CV == nil || *out.CV != 0 {
		t.Fatalf("outcome %+v, want convergence after min_batches = 4", out)
	}
	if fd := out.finding(b); fd != nil {
		t.Errorf("finding %+v for a warm-up that converged", fd)
	}
}

// TestWarmupEngineError: an engine error ends warm-up with that error.
func TestWarmupEngineError(t *testing.T) {
	boom := errors.New("engine died")
	_, err := cvWarmup(context.Background(), warmupBounds{TargetCV: 0.05, Window: 3, MinBatches: 3, MaxBatches: 20},
		func() int64 { return 0 }, func(context.Context) ([]float64, error) { return nil, boom }, func(launch.WarmupProgress) {})
	if !errors.Is(err, boom) {
		t.Errorf("err %v, want %v", err, boom)
	}
}
