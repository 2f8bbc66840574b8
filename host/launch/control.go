package launch

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Message types on the control channel.
const (
	// worker → parent
	MsgBarrier  = "barrier"  // the worker reached barrier Name
	MsgProgress = "progress" // phase / prompts done / tokens per second
	MsgDone     = "done"     // the worker saved its result
	MsgError    = "error"    // the worker failed; Error says why
	// MsgHeartbeat comes from the worker's own ticker (docs/reliability.md, "Watchdog"): its
	// phase, the plugin call in flight (Call, since CallSinceUnixNS) and its progress counter
	// (Seq) with how long it has not moved while that call runs (IdleS).
	MsgHeartbeat = "heartbeat"
	// Between a Slurm task's agent and the parent (slurm.go, slurmtask.go), never seen by the
	// worker itself: the agent's hello (its first message, with the run's secret), the
	// worker's exit status, and the parent's signal request (Name "INT" or "KILL").
	MsgHello  = "hello"
	MsgExit   = "exit"
	MsgSignal = "signal"
	// parent → worker
	MsgRelease = "release" // pass barrier Name
	MsgAbort   = "abort"   // another worker failed: give up with Error
	MsgStop    = "stop"    // the user interrupted the run
)

// Barrier names, in lifecycle order.
const (
	BarrierBaseline = "baseline"
	BarrierLoad     = "load"
	BarrierWindow   = "window"
)

// Message is one line of the control channel.
type Message struct {
	Type  string `json:"type"`
	Rank  int    `json:"rank"`
	Name  string `json:"name,omitempty"`
	Error string `json:"error,omitempty"`
	// Progress fields.
	Phase        string  `json:"phase,omitempty"`
	PromptsDone  int     `json:"prompts_done,omitempty"`
	PromptsTotal int     `json:"prompts_total,omitempty"`
	TokensPerS   float64 `json:"tokens_per_s,omitempty"`
	Detail       string  `json:"detail,omitempty"`
	// Warmup is where a cv-mode warm-up stands (phase "warmup" only).
	Warmup *WarmupProgress `json:"warmup,omitempty"`
	// Heartbeat fields: the plugin call in flight ("" between calls), e.g. "engine.Generate",
	// when it began, the worker's progress counter and the seconds it has not changed while the
	// call runs.
	Call            string  `json:"call,omitempty"`
	CallSinceUnixNS int64   `json:"call_since_unix_ns,omitempty"`
	Seq             uint64  `json:"seq,omitempty"`
	IdleS           float64 `json:"idle_s,omitempty"`
	// Slurm agent fields: the hello's secret and where the task runs (host, boot, the worker's
	// pid once started, the job and step ids), and the worker's exit code.
	Secret   string `json:"secret,omitempty"`
	Host     string `json:"host,omitempty"`
	BootID   string `json:"boot_id,omitempty"`
	Pid      int    `json:"pid,omitempty"`
	JobID    string `json:"job_id,omitempty"`
	StepID   string `json:"step_id,omitempty"`
	ExitCode int    `json:"exit_code,omitempty"`
}

// WarmupProgress is a cv-mode warm-up after one more batch: the batch count and elapsed time
// against their bounds, and the latency CV against its target (nil until window batches ran).
type WarmupProgress struct {
	Batch      int      `json:"batch"`
	MaxBatches int      `json:"max_batches"`
	CV         *float64 `json:"cv"`
	TargetCV   float64  `json:"target_cv"`
	ElapsedS   float64  `json:"elapsed_s"`
	MaxS       float64  `json:"max_s"` // 0: no time bound
}

// Conn is one end of a control channel.
type Conn struct {
	mu  sync.Mutex
	enc *json.Encoder
	dec *bufio.Scanner
	w   io.Closer
}

// NewConn wraps a reader and a writer as a control channel end.
func NewConn(r io.Reader, w io.WriteCloser) *Conn {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	return &Conn{enc: json.NewEncoder(w), dec: sc, w: w}
}

// Send writes one message.
func (c *Conn) Send(m Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.enc.Encode(m)
}

// Recv reads one message; io.EOF when the other end closed.
func (c *Conn) Recv() (Message, error) {
	if !c.dec.Scan() {
		if err := c.dec.Err(); err != nil {
			return Message{}, err
		}
		return Message{}, io.EOF
	}
	var m Message
	if err := json.Unmarshal(c.dec.Bytes(), &m); err != nil {
		return Message{}, fmt.Errorf("control channel: bad message %q: %w", c.dec.Bytes(), err)
	}
	return m, nil
}

// Close closes the writing side.
func (c *Conn) Close() error { return c.w.Close() }

// ErrAborted is returned by a worker's Barrier when another worker failed.
var ErrAborted = errors.New("run aborted")

// ErrStopped is returned by a worker's Barrier when the user interrupted the run.
var ErrStopped = errors.New("run interrupted")

// WorkerSide is the worker's view of the control channel: it reports progress and waits at
// barriers. A stop or abort from the parent cancels the worker's context.
type WorkerSide struct {
	conn    *Conn
	rank    int
	mu      sync.Mutex
	waiting map[string]chan error
	fatal   error
	cancel  context.CancelCauseFunc
}

// NewWorkerSide starts reading the parent's messages; cancel is called (with ErrAborted or
// ErrStopped as the cause) when the parent aborts or stops the run or goes away.
func NewWorkerSide(conn *Conn, rank int, cancel context.CancelCauseFunc) *WorkerSide {
	w := &WorkerSide{conn: conn, rank: rank, waiting: map[string]chan error{}, cancel: cancel}
	go w.read()
	return w
}

func (w *WorkerSide) read() {
	for {
		m, err := w.conn.Recv()
		if err != nil {
			w.fail(fmt.Errorf("%w: the parent lemctl went away (%v)", ErrAborted, err))
			return
		}
		switch m.Type {
		case MsgRelease:
			w.mu.Lock()
			ch := w.waiting[m.Name]
			if ch == nil {
				ch = make(chan error, 1)
				w.waiting[m.Name] = ch
			}
			w.mu.Unlock()
			ch <- nil
		case MsgAbort:
			w.fail(fmt.Errorf("%w: %s", ErrAborted, m.Error))
		case MsgStop:
			w.fail(ErrStopped)
		}
	}
}

func (w *WorkerSide) fail(err error) {
	w.mu.Lock()
	if w.fatal == nil {
		w.fatal = err
	}
	for _, ch := range w.waiting {
		select {
		case ch <- err:
		default:
		}
	}
	w.mu.Unlock()
	w.cancel(err)
}

// Barrier reports that this worker reached name and waits until the parent releases it.
func (w *WorkerSide) Barrier(ctx context.Context, name string) error {
	w.mu.Lock()
	if w.fatal != nil {
		err := w.fatal
		w.mu.Unlock()
		return err
	}
	ch := w.waiting[name]
	if ch == nil {
		ch = make(chan error, 1)
		w.waiting[name] = ch
	}
	w.mu.Unlock()
	if err := w.conn.Send(Message{Type: MsgBarrier, Rank: w.rank, Name: name}); err != nil {
		return fmt.Errorf("barrier %s: %w", name, err)
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Progress reports what the worker is doing; errors are ignored (progress is advisory).
func (w *WorkerSide) Progress(m Message) {
	m.Type, m.Rank = MsgProgress, w.rank
	_ = w.conn.Send(m)
}

// Heartbeat reports the worker's liveness and the plugin call in flight; errors are ignored (a
// parent that is gone is noticed by the reader).
func (w *WorkerSide) Heartbeat(m Message) {
	m.Type, m.Rank = MsgHeartbeat, w.rank
	_ = w.conn.Send(m)
}

// Done reports success; Failed reports the error that ends the worker.
func (w *WorkerSide) Done() { _ = w.conn.Send(Message{Type: MsgDone, Rank: w.rank}) }

// Failed reports err to the parent.
func (w *WorkerSide) Failed(err error) {
	_ = w.conn.Send(Message{Type: MsgError, Rank: w.rank, Error: err.Error()})
}
