package launch

import (
	"context"
	"fmt"
	"time"
)

// Outcome is how one worker ended.
type Outcome struct {
	Rank     int
	ExitCode int
	// Error is what the worker reported (or why it could not be waited for).
	Error string
	// Done is true when the worker saved its result and marked it complete.
	Done    bool
	LogPath string
}

// Coordinator runs the barriers of a set of workers and collects their outcomes.
type Coordinator struct {
	Workers []Worker
	// Barriers in the order every worker reaches them (default: baseline, load, window).
	Barriers []string
	// OnProgress receives progress messages (may be nil).
	OnProgress func(Message)
	// OnEvent receives barrier releases and failures as text, for logs (may be nil).
	OnEvent func(format string, args ...any)
	// Grace is how long workers get to stop after an interrupt before they are killed (3 s).
	Grace time.Duration
	// Force, when it fires, kills every worker at once (a second Ctrl-C).
	Force <-chan struct{}
}

type event struct {
	rank int
	msg  Message
	exit bool
	code int
	err  error
}

// Run coordinates until every worker has exited. Cancelling ctx is an interrupt: every worker is
// asked to stop, and killed after Grace. Run returns the outcomes by rank and whether the run was
// interrupted.
func (c *Coordinator) Run(ctx context.Context) (outcomes []Outcome, interrupted bool) {
	if len(c.Barriers) == 0 {
		c.Barriers = []string{BarrierBaseline, BarrierLoad, BarrierWindow}
	}
	if c.Grace <= 0 {
		c.Grace = 3 * time.Second
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
	for _, w := range c.Workers {
		outcome[w.Rank()] = &Outcome{Rank: w.Rank(), LogPath: w.LogPath()}
	}
	aborted := false
	exited := 0
	var killTimer <-chan time.Time
	done := ctx.Done()
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
	}
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
			logf("workers did not stop within %s: killing them", c.Grace)
			for _, w := range c.Workers {
				_ = w.Kill()
			}
		case <-c.Force:
			logf("forced stop: killing every worker")
			for _, w := range c.Workers {
				_ = w.Kill()
			}
		case ev := <-events:
			o := outcome[ev.rank]
			if ev.exit {
				exited++
				o.ExitCode = ev.code
				if ev.err != nil && o.Error == "" {
					o.Error = ev.err.Error()
				}
				if ev.code != 0 && o.Error == "" {
					o.Error = fmt.Sprintf("exited with status %d", ev.code)
				}
				if (ev.code != 0 || !o.Done) && passed[ev.rank] < len(c.Barriers) && !interrupted {
					abort(fmt.Sprintf("rank %d failed before the %s barrier: %s (log: %s)", ev.rank, c.Barriers[passed[ev.rank]], o.Error, o.LogPath))
				}
				continue
			}
			switch ev.msg.Type {
			case MsgProgress:
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
