package launch

import (
	"context"
	"fmt"
	"syscall"
	"time"
)

// Outcome is how one worker ended.
type Outcome struct {
	Rank     int
	ExitCode int
	// Error is what the worker reported (or why it could not be waited for, or why the watchdog
	// stopped it).
	Error string
	// Done is true when the worker saved its result and marked it complete.
	Done    bool
	LogPath string
	// Phase is the last phase the worker reported, Call the plugin call it last reported in
	// flight ("" when none).
	Phase string
	Call  string
	// Stalled is true when the watchdog failed the worker (Error says why).
	Stalled bool
}

// Failure is a worker that failed while the run went on: it exited unsuccessfully or the
// watchdog found it stalled. The coordinator reports it at once, then stops the others.
type Failure struct {
	Rank    int
	Reason  string // what the worker reported, or why the watchdog stopped it
	Exit    string // how it exited ("killed by signal 9 (killed), exit status 137"); "" when it had not exited yet
	Phase   string // the last phase it reported
	Call    string // the plugin call it was in, if any
	LogPath string
}

// String is the line the progress output shows, e.g. "rank 1 failed: killed by signal 9
// (killed), exit status 137; last phase measured, in engine.Generate (log: …)".
func (f Failure) String() string {
	s := fmt.Sprintf("rank %d failed: %s", f.Rank, f.Reason)
	if f.Exit != "" && f.Exit != f.Reason {
		s += fmt.Sprintf(" (%s)", f.Exit)
	}
	if f.Phase != "" {
		s += fmt.Sprintf("; last phase %s", f.Phase)
	}
	if f.Call != "" {
		s += fmt.Sprintf(", in %s", f.Call)
	}
	if f.LogPath != "" {
		s += fmt.Sprintf(" (log: %s)", f.LogPath)
	}
	return s
}

// Coordinator runs the barriers of a set of workers and collects their outcomes.
type Coordinator struct {
	Workers []Worker
	// Barriers in the order every worker reaches them (default: baseline, load, window).
	Barriers []string
	// OnProgress receives progress messages (may be nil).
	OnProgress func(Message)
	// OnFailure receives each failed worker once, as soon as it is known (may be nil).
	OnFailure func(Failure)
	// OnEvent receives barrier releases and failures as text, for logs (may be nil).
	OnEvent func(format string, args ...any)
	// Grace is how long workers get to stop after an interrupt before they are killed (3 s).
	Grace time.Duration
	// AbortGrace is how long the other workers get to stop after one failed before they are
	// killed (30 s).
	AbortGrace time.Duration
	// StallTimeout is the watchdog (docs/reliability.md, "Watchdog"): a worker whose heartbeat
	// shows the same plugin call with no progress for this long, or that sends nothing at all for
	// this long, is killed and the run stopped. 0: off.
	StallTimeout time.Duration
	// Force, when it fires, kills every worker at once (a second Ctrl-C).
	Force <-chan struct{}
	// now is the clock of the watchdog (time.Now when nil).
	now func() time.Time
}

type event struct {
	rank int
	msg  Message
	exit bool
	code int
	err  error
}

// watch is what the watchdog knows of one worker.
type watch struct {
	lastSeen time.Time // the last message of any kind
	call     string
	since    int64
	idleFrom time.Time // when, on the parent's clock, its progress counter last moved (call in flight)
}

// DescribeExit says how a worker with exit code code ended: "exited with status 1", or, for
// 128+n, "killed by signal n (name)".
func DescribeExit(code int) string {
	if code < 0 {
		return "exit status unknown"
	}
	if code > 128 && code < 128+65 {
		sig := syscall.Signal(code - 128)
		return fmt.Sprintf("killed by signal %d (%s), exit status %d", int(sig), sig, code)
	}
	return fmt.Sprintf("exited with status %d", code)
}

// Run coordinates until every worker has exited. Cancelling ctx is an interrupt: every worker is
// asked to stop, and killed after Grace. A worker that fails (or stalls) is reported through
// OnFailure at once and the others are aborted. Run returns the outcomes by rank and whether the
// run was interrupted.
func (c *Coordinator) Run(ctx context.Context) (outcomes []Outcome, interrupted bool) {
	if len(c.Barriers) == 0 {
		c.Barriers = []string{BarrierBaseline, BarrierLoad, BarrierWindow}
	}
	if c.Grace <= 0 {
		c.Grace = 3 * time.Second
	}
	if c.AbortGrace <= 0 {
		c.AbortGrace = 30 * time.Second
	}
	now := c.now
	if now == nil {
		now = time.Now
	}
	logf := c.OnEvent
	if logf == nil {
		logf = func(string, ...any) {}
	}
	n := len(c.Workers)
	events := make(chan event, 16*n)
	byRank := map[int]Worker{}
	for _, w := range c.Workers {
		byRank[w.Rank()] = w
		go func(w Worker) {
			for {
				m, err := w.Conn().Recv()
				if err != nil {
					break
				}
				events <- event{rank: w.Rank(), msg: m}
			}
			code, err := w.Wait()
			events <- event{rank: w.Rank(), exit: true, code: code, err: err}
		}(w)
	}
	outcome := map[int]*Outcome{}
	passed := map[int]int{} // rank → barriers passed
	arrived := map[string]map[int]bool{}
	for _, b := range c.Barriers {
		arrived[b] = map[int]bool{}
	}
	watches := map[int]*watch{}
	start := now()
	for _, w := range c.Workers {
		outcome[w.Rank()] = &Outcome{Rank: w.Rank(), LogPath: w.LogPath()}
		watches[w.Rank()] = &watch{lastSeen: start}
	}
	aborted := false
	exited := 0
	var killTimer <-chan time.Time
	done := ctx.Done()
	var tick <-chan time.Time
	if c.StallTimeout > 0 {
		t := time.NewTicker(min(max(c.StallTimeout/4, 10*time.Millisecond), time.Second))
		defer t.Stop()
		tick = t.C
	}
	abort := func(reason string) {
		if aborted {
			return
		}
		aborted = true
		logf("aborting the run: %s", reason)
		for r, w := range byRank {
			if outcome[r].ExitCode == 0 && !outcome[r].Done {
				_ = w.Conn().Send(Message{Type: MsgAbort, Error: reason})
			}
		}
		if !interrupted {
			killTimer = time.After(c.AbortGrace)
		}
	}
	reported := map[int]bool{}
	fail := func(o *Outcome, reason, exit string) {
		// Workers that fail after an abort or an interrupt are its consequence, not news.
		if reported[o.Rank] || interrupted || aborted {
			return
		}
		reported[o.Rank] = true
		f := Failure{Rank: o.Rank, Reason: reason, Exit: exit, Phase: o.Phase, Call: o.Call, LogPath: o.LogPath}
		if c.OnFailure != nil {
			c.OnFailure(f)
		}
		if passed[o.Rank] < len(c.Barriers) {
			abort(fmt.Sprintf("rank %d failed before the %s barrier: %s (log: %s)", o.Rank, c.Barriers[passed[o.Rank]], reason, o.LogPath))
		} else {
			abort(f.String())
		}
	}
	exitedRank := map[int]bool{}
	for exited < n {
		select {
		case <-done:
			done = nil
			interrupted = true
			logf("interrupted: stopping %d workers (again to force)", n-exited)
			for _, w := range c.Workers {
				_ = w.Conn().Send(Message{Type: MsgStop})
				_ = w.Interrupt()
			}
			killTimer = time.After(c.Grace)
		case <-killTimer:
			logf("workers did not stop in time: killing them")
			for _, w := range c.Workers {
				_ = w.Kill()
			}
		case <-c.Force:
			logf("forced stop: killing every worker")
			for _, w := range c.Workers {
				_ = w.Kill()
			}
		case <-tick:
			if interrupted || aborted {
				continue
			}
			t := now()
			for r, wt := range watches {
				o := outcome[r]
				if exitedRank[r] || o.Done || reported[r] {
					continue
				}
				var why string
				switch {
				case t.Sub(wt.lastSeen) >= c.StallTimeout:
					why = fmt.Sprintf("stalled: no heartbeat for %s", roundDur(t.Sub(wt.lastSeen)))
				case wt.call != "" && t.Sub(wt.idleFrom) >= c.StallTimeout:
					why = fmt.Sprintf("stalled: no progress for %s in %s (since %s)", roundDur(t.Sub(wt.idleFrom)), wt.call,
						time.Unix(0, wt.since).Format("15:04:05"))
				default:
					continue
				}
				why += fmt.Sprintf(" (launch.stall_timeout_s = %g)", c.StallTimeout.Seconds())
				o.Error, o.Stalled = why, true
				_ = byRank[r].Kill()
				fail(o, why, "")
			}
		case ev := <-events:
			o := outcome[ev.rank]
			if ev.exit {
				exited++
				exitedRank[ev.rank] = true
				o.ExitCode = ev.code
				if ev.err != nil && o.Error == "" {
					o.Error = ev.err.Error()
				}
				if ev.code != 0 && o.Error == "" {
					o.Error = DescribeExit(ev.code)
				}
				if (ev.code != 0 || !o.Done) && !interrupted {
					reason := o.Error
					if reason == "" {
						reason = "exited without saving its result"
					}
					fail(o, reason, DescribeExit(ev.code))
				}
				continue
			}
			wt := watches[ev.rank]
			t := now()
			wt.lastSeen = t
			switch ev.msg.Type {
			case MsgHeartbeat:
				if ev.msg.Phase != "" {
					o.Phase = ev.msg.Phase
				}
				o.Call = ev.msg.Call
				wt.call, wt.since = ev.msg.Call, ev.msg.CallSinceUnixNS
				wt.idleFrom = t.Add(-time.Duration(ev.msg.IdleS * float64(time.Second)))
			case MsgProgress:
				if ev.msg.Phase != "" {
					o.Phase = ev.msg.Phase
				}
				if c.OnProgress != nil {
					c.OnProgress(ev.msg)
				}
			case MsgError:
				o.Error = ev.msg.Error
			case MsgDone:
				o.Done = true
			case MsgBarrier:
				set, ok := arrived[ev.msg.Name]
				if !ok {
					continue
				}
				set[ev.rank] = true
				if len(set) == n && !aborted && !interrupted {
					logf("all %d workers reached the %s barrier", n, ev.msg.Name)
					for r, w := range byRank {
						passed[r]++
						_ = w.Conn().Send(Message{Type: MsgRelease, Name: ev.msg.Name})
					}
				}
			}
		}
	}
	for _, w := range c.Workers {
		_ = w.Conn().Close()
		outcomes = append(outcomes, *outcome[w.Rank()])
	}
	return outcomes, interrupted
}

// roundDur rounds d for a message: to the second from 10 s, else to the tenth.
func roundDur(d time.Duration) time.Duration {
	if d >= 10*time.Second {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}
