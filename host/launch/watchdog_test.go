package launch

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// startKillable is start for a body that also sees Kill and Interrupt.
func startKillable(r int, body func(ctx context.Context, w *WorkerSide, killed <-chan struct{}) int) *fakeWorker {
	toWorkerR, toWorkerW := io.Pipe()
	toParentR, toParentW := io.Pipe()
	f := &fakeWorker{rank: r, parent: NewConn(toParentR, toWorkerW), exit: make(chan int, 1), intr: make(chan struct{})}
	go func() {
		ctx, cancel := context.WithCancelCause(context.Background())
		conn := NewConn(toWorkerR, toParentW)
		ws := NewWorkerSide(conn, r, cancel)
		code := body(ctx, ws, f.intr)
		conn.Close()
		f.exit <- code
	}()
	return f
}

// beating passes the barriers, then sends heartbeats every 10 ms until killed or stopped:
// in call with the progress counter moving when moving, else frozen in the same call.
func beating(call string, moving bool, stopAfter time.Duration) func(ctx context.Context, w *WorkerSide, killed <-chan struct{}) int {
	return func(ctx context.Context, w *WorkerSide, killed <-chan struct{}) int {
		for _, b := range []string{BarrierBaseline, BarrierLoad, BarrierWindow} {
			if w.Barrier(ctx, b) != nil {
				return 1
			}
		}
		w.Progress(Message{Phase: "measured"})
		start := time.Now()
		since := start.UnixNano()
		seq := uint64(1)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-killed:
				return 137
			case <-ctx.Done():
				w.Failed(context.Cause(ctx))
				return 1
			case <-t.C:
			}
			if stopAfter > 0 && time.Since(start) > stopAfter {
				w.Done()
				return 0
			}
			idle := time.Since(start).Seconds()
			if moving {
				seq++
				idle = 0
			}
			w.Heartbeat(Message{Phase: "measured", Call: call, CallSinceUnixNS: since, Seq: seq, IdleS: idle})
		}
	}
}

func TestWatchdogFailsAWorkerStuckInACall(t *testing.T) {
	var failures []Failure
	// Rank 0 beats every 10 ms: the limit is long enough that a loaded machine (-race, load 20)
	// never holds its heartbeat goroutine that long, so only rank 1, frozen in its call, stalls.
	c := &Coordinator{StallTimeout: 1500 * time.Millisecond, AbortGrace: time.Minute,
		Workers:   []Worker{startKillable(0, beating("engine.Generate", true, 0)), startKillable(1, beating("engine.Generate", false, 0))},
		OnFailure: func(f Failure) { failures = append(failures, f) }}
	out, intr := c.Run(context.Background())
	if intr {
		t.Fatal("not interrupted")
	}
	if !out[1].Stalled || out[1].ExitCode != 137 || !strings.Contains(out[1].Error, "engine.Generate") || !strings.Contains(out[1].Error, "stall_timeout_s") {
		t.Errorf("rank 1 should have been killed as stalled in engine.Generate: %+v", out[1])
	}
	if out[0].Stalled || out[0].ExitCode != 1 || !strings.Contains(out[0].Error, "rank 1 failed") {
		t.Errorf("rank 0 (making progress) should have been aborted, not stalled: %+v", out[0])
	}
	if len(failures) != 1 || failures[0].Rank != 1 || failures[0].Phase != "measured" || failures[0].Call != "engine.Generate" {
		t.Errorf("failures reported: %+v", failures)
	}
}

func TestWatchdogFailsAWorkerThatGoesSilent(t *testing.T) {
	silent := func(ctx context.Context, w *WorkerSide, killed <-chan struct{}) int {
		for _, b := range []string{BarrierBaseline, BarrierLoad, BarrierWindow} {
			if w.Barrier(ctx, b) != nil {
				return 1
			}
		}
		<-killed // a stopped process: no heartbeat, no exit
		return 137
	}
	c := &Coordinator{StallTimeout: 300 * time.Millisecond, Workers: []Worker{startKillable(0, silent)}}
	out, _ := c.Run(context.Background())
	if !out[0].Stalled || !strings.Contains(out[0].Error, "no heartbeat") {
		t.Errorf("a silent worker should have been killed as stalled: %+v", out[0])
	}
}

func TestWatchdogLeavesAHealthyRunAlone(t *testing.T) {
	// Between calls (Call "") a worker may take as long as it likes, as long as it beats.
	c := &Coordinator{StallTimeout: 2 * time.Second,
		Workers: []Worker{startKillable(0, beating("", false, 2500*time.Millisecond)), startKillable(1, beating("engine.Generate", true, 2500*time.Millisecond))}}
	out, _ := c.Run(context.Background())
	for _, o := range out {
		if o.Stalled || o.ExitCode != 0 || !o.Done {
			t.Errorf("rank %d: %+v", o.Rank, o)
		}
	}
}
