package runcmd

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// Signals is how a command that runs experiments (run, sweep) answers the user's signals: the
// first SIGINT, SIGTERM or SIGHUP ends the context WatchSignals returned (the running experiment
// stops gracefully: its workers are cleaned up, its manifest saved), a second closes Force (the
// workers are stopped at once). Signal names the first; the exit code is 128 + it
// (docs/reliability.md, "Signals and abandoned runs").
type Signals struct {
	// Force is closed by the second signal.
	Force <-chan struct{}

	mu  sync.Mutex
	sig syscall.Signal
}

// WatchSignals starts watching; stop releases the signals and ends the returned context. The
// context also ends with parent, whose end on the same signal is not recorded as its cause: the
// signal is (Signal).
func WatchSignals(parent context.Context) (ctx context.Context, s *Signals, stop func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	force := make(chan struct{})
	s = &Signals{Force: force}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		n := 0
		for sig := range sigs {
			n++
			if n == 1 {
				s.set(sig.(syscall.Signal))
				cancel()
			} else if n == 2 {
				close(force)
			}
		}
	}()
	go func() {
		select {
		case <-parent.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, s, func() { signal.Stop(sigs); cancel() }
}

func (s *Signals) set(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sig == 0 {
		s.sig = sig
	}
}

// Signal returns the first signal received, if any.
func (s *Signals) Signal() (syscall.Signal, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sig, s.sig != 0
}
