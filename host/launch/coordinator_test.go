package launch

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeWorker is a worker goroutine connected to the coordinator by pipes.
type fakeWorker struct {
	rank   int
	parent *Conn
	exit   chan int
	once   sync.Once
	intr   chan struct{}
}

func (f *fakeWorker) Rank() int          { return f.rank }
func (f *fakeWorker) Conn() *Conn        { return f.parent }
func (f *fakeWorker) Interrupt() error   { f.once.Do(func() { close(f.intr) }); return nil }
func (f *fakeWorker) Kill() error        { f.once.Do(func() { close(f.intr) }); return nil }
func (f *fakeWorker) Wait() (int, error) { return <-f.exit, nil }
func (f *fakeWorker) Pid() int           { return 0 }
func (f *fakeWorker) LogPath() string    { return "log" }

// start runs body as a worker of rank r; body's return value is its exit code.
func start(r int, body func(ctx context.Context, w *WorkerSide) int) *fakeWorker {
	toWorkerR, toWorkerW := io.Pipe()
	toParentR, toParentW := io.Pipe()
	f := &fakeWorker{rank: r, parent: NewConn(toParentR, toWorkerW), exit: make(chan int, 1), intr: make(chan struct{})}
	go func() {
		ctx, cancel := context.WithCancelCause(context.Background())
		conn := NewConn(toWorkerR, toParentW)
		ws := NewWorkerSide(conn, r, cancel)
		code := body(ctx, ws)
		conn.Close()
		f.exit <- code
	}()
	return f
}

func allBarriers(record *sync.Map) func(ctx context.Context, w *WorkerSide) int {
	return func(ctx context.Context, w *WorkerSide) int {
		for _, b := range []string{BarrierBaseline, BarrierLoad, BarrierWindow} {
			if err := w.Barrier(ctx, b); err != nil {
				w.Failed(err)
				return 1
			}
			record.Store(b+"/"+string(rune('0'+w.rank)), time.Now())
		}
		w.Done()
		return 0
	}
}

func TestBarriersReleaseTogether(t *testing.T) {
	var rec sync.Map
	slow := func(ctx context.Context, w *WorkerSide) int {
		time.Sleep(100 * time.Millisecond)
		return allBarriers(&rec)(ctx, w)
	}
	c := &Coordinator{Workers: []Worker{start(0, allBarriers(&rec)), start(1, slow)}}
	out, intr := c.Run(context.Background())
	if intr {
		t.Fatal("not interrupted")
	}
	for _, o := range out {
		if o.ExitCode != 0 || !o.Done {
			t.Errorf("rank %d: %+v", o.Rank, o)
		}
	}
	a, _ := rec.Load("baseline/0")
	b, _ := rec.Load("baseline/1")
	if d := b.(time.Time).Sub(a.(time.Time)); d > 50*time.Millisecond || d < -50*time.Millisecond {
		t.Errorf("rank 0 passed the baseline barrier %v away from rank 1: it did not wait", d)
	}
}

func TestFailureBeforeABarrierReleasesTheOthers(t *testing.T) {
	var rec sync.Map
	failing := func(ctx context.Context, w *WorkerSide) int {
		if err := w.Barrier(ctx, BarrierBaseline); err != nil {
			return 1
		}
		w.Failed(errors.New("model not found"))
		return 1
	}
	c := &Coordinator{Workers: []Worker{start(0, allBarriers(&rec)), start(1, failing)}}
	done := make(chan []Outcome)
	go func() { out, _ := c.Run(context.Background()); done <- out }()
	select {
	case out := <-done:
		if out[0].ExitCode != 1 || !strings.Contains(out[0].Error, "rank 1 failed before the load barrier: model not found") {
			t.Errorf("rank 0 should have been aborted naming rank 1: %+v", out[0])
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a worker failing before a barrier left the others hanging")
	}
}

// A worker that dies after the window barrier is reported at once, while the others still run,
// and the others are then stopped (docs/reliability.md, "Dead workers").
func TestFailureAfterTheWindowBarrierIsReportedAtOnceAndStopsTheOthers(t *testing.T) {
	dies := func(ctx context.Context, w *WorkerSide) int {
		for _, b := range []string{BarrierBaseline, BarrierLoad, BarrierWindow} {
			if w.Barrier(ctx, b) != nil {
				return 1
			}
		}
		w.Progress(Message{Phase: "measured"})
		return 137
	}
	running := make(chan struct{})
	busy := func(ctx context.Context, w *WorkerSide) int {
		for _, b := range []string{BarrierBaseline, BarrierLoad, BarrierWindow} {
			if w.Barrier(ctx, b) != nil {
				return 1
			}
		}
		<-ctx.Done() // a long window: only an abort ends it
		close(running)
		w.Failed(context.Cause(ctx))
		return 1
	}
	var failures []Failure
	stillRunning := false
	c := &Coordinator{Workers: []Worker{start(0, busy), start(1, dies)}, OnFailure: func(f Failure) {
		select {
		case <-running:
		default:
			stillRunning = true
		}
		failures = append(failures, f)
	}}
	out, _ := c.Run(context.Background())
	if len(failures) == 0 || failures[0].Rank != 1 || !stillRunning {
		t.Fatalf("rank 1's death was not reported while rank 0 ran: %+v (rank 0 still running: %v)", failures, stillRunning)
	}
	if line := failures[0].String(); !strings.Contains(line, "signal 9") || !strings.Contains(line, "last phase measured") {
		t.Errorf("failure line %q does not name the signal and the last phase", line)
	}
	if out[0].ExitCode != 1 || !strings.Contains(out[0].Error, "rank 1 failed") {
		t.Errorf("rank 0 should have been aborted naming rank 1: %+v", out[0])
	}
	if out[1].ExitCode != 137 {
		t.Errorf("rank 1: %+v", out[1])
	}
}

func TestInterruptStopsWorkers(t *testing.T) {
	waitForever := func(ctx context.Context, w *WorkerSide) int {
		if err := w.Barrier(ctx, BarrierBaseline); err != nil {
			return 1
		}
		<-ctx.Done()
		if errors.Is(context.Cause(ctx), ErrStopped) {
			return 130
		}
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Coordinator{Workers: []Worker{start(0, waitForever), start(1, waitForever)}}
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	out, intr := c.Run(ctx)
	if !intr {
		t.Error("Run did not report the interrupt")
	}
	for _, o := range out {
		if o.ExitCode != 130 {
			t.Errorf("rank %d exited %d, want 130", o.Rank, o.ExitCode)
		}
	}
}
