package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/lemctl/lemctl/host/launch"
	"github.com/lemctl/lemctl/host/results"
)

// warmupBounds are a cv-mode warm-up's target and bounds (lifecycle.warmup.*).
type warmupBounds struct {
	TargetCV   float64
	Window     int
	MinBatches int
	MaxBatches int
	MaxS       float64 // 0: no time bound
}

// warmupOutcome is how a cv-mode warm-up ended.
type warmupOutcome struct {
	Batches int
	// CV is the batch-latency CV over the last Window batches; nil when fewer ran.
	CV        *float64
	Converged bool
	// StoppedBy is the config key of the bound that ended a warm-up that did not converge.
	StoppedBy string
	Elapsed   time.Duration
}

// cvWarmup runs batch until the latency CV of the last Window batches falls below TargetCV (after
// at least MinBatches), or a bound stops it first: MaxBatches batches (at least MinBatches), or
// MaxS seconds (no batch starts after that; the one under way finishes). batch runs one warm-up
// batch and returns its latencies; now is the monotonic clock in ns; report gets the state after
// every batch.
func cvWarmup(ctx context.Context, b warmupBounds, now func() int64, batch func(context.Context) ([]float64, error), report func(launch.WarmupProgress)) (warmupOutcome, error) {
	window, maxBatches := max(2, b.Window), max(b.MaxBatches, b.MinBatches, 1)
	start := now()
	var out warmupOutcome
	var lat []float64
	for {
		ts, err := batch(ctx)
		if err != nil {
			return out, err
		}
		lat = append(lat, ts...)
		out.Batches++
		out.Elapsed = time.Duration(now() - start)
		out.CV = nil
		if len(lat) >= window {
			if s := results.NewStats(lat[len(lat)-window:]); s.CV != nil {
				out.CV = results.Float(*s.CV)
			}
		}
		report(launch.WarmupProgress{Batch: out.Batches, MaxBatches: maxBatches, CV: out.CV, TargetCV: b.TargetCV,
			ElapsedS: out.Elapsed.Seconds(), MaxS: b.MaxS})
		switch {
		case out.Batches >= b.MinBatches && out.CV != nil && *out.CV < b.TargetCV:
			out.Converged = true
			return out, nil
		case out.Batches >= maxBatches:
			out.StoppedBy = "lifecycle.warmup.max_batches"
			return out, nil
		case b.MaxS > 0 && out.Elapsed.Seconds() >= b.MaxS:
			out.StoppedBy = "lifecycle.warmup.max_s"
			return out, nil
		}
	}
}

// finding is the warmup_not_converged warning for a warm-up that a bound stopped, nil for one
// that converged.
func (o warmupOutcome) finding(b warmupBounds) *results.Finding {
	if o.Converged {
		return nil
	}
	bound := fmt.Sprintf("%s = %d", o.StoppedBy, max(b.MaxBatches, b.MinBatches, 1))
	if o.StoppedBy == "lifecycle.warmup.max_s" {
		bound = fmt.Sprintf("%s = %g s", o.StoppedBy, b.MaxS)
	}
	cv := fmt.Sprintf("no CV yet (fewer than lifecycle.warmup.window = %d batches ran)", max(2, b.Window))
	if o.CV != nil {
		cv = fmt.Sprintf("batch-latency CV %.3f over the last %d batches", *o.CV, max(2, b.Window))
	}
	return &results.Finding{Code: "warmup_not_converged", Severity: results.SeverityWarning,
		Message: fmt.Sprintf("warm-up stopped by %s after %d batches in %.1f s with %s, target below %g: the measured window may still include warm-up effects",
			bound, o.Batches, o.Elapsed.Seconds(), cv, b.TargetCV),
		Advice: "raise lifecycle.warmup.max_batches or lifecycle.warmup.max_s, or raise lifecycle.warmup.cv_threshold if this workload's latency varies by nature"}
}
