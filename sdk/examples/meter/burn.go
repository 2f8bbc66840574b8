package main

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lemctl/lemctl/sdk/clock"
)

// burner keeps the CPU time of the whole plugin process at a fixed share of one core while at
// least one session holds it, so that tests of the host's overhead accounting have a known
// answer: the sampler's own work counts towards the share, and the burner tops it up. It measures
// the process CPU clock, never the wall clock: on a busy machine a wall-clock spin would get less
// CPU than it asked for, and the answer would no longer be known.
type burner struct {
	mu   sync.Mutex
	refs int
	stop chan struct{}
	done chan struct{}
}

// acquire starts burning share of a core if nobody else holds the burner, and returns the
// function that gives this hold back (the last one stops the burn and waits for it to end).
func (b *burner) acquire(share float64) (release func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refs++
	if b.refs == 1 {
		b.stop, b.done = make(chan struct{}), make(chan struct{})
		go burn(share, b.stop, b.done)
	}
	var once sync.Once
	return func() { once.Do(b.release) }
}

func (b *burner) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refs--
	if b.refs == 0 {
		close(b.stop)
		<-b.done
	}
}

// burnChunk is how much CPU time the burner spends in one go before it checks its budget again.
const burnChunk = time.Millisecond

// burn keeps the process's CPU time since it started at share × the wall time since then, in
// chunks of burnChunk, until stop is closed.
func burn(share float64, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	wall0, cpu0 := clock.Mono(), processCPU()
	for {
		select {
		case <-stop:
			return
		default:
		}
		used := processCPU() - cpu0
		budget := int64(share * float64(clock.Mono()-wall0))
		if used < budget {
			spin(cpu0+budget+int64(burnChunk), stop)
			continue
		}
		// Sleep until the budget has grown past what was used.
		wait := time.Duration(float64(used-budget) / share)
		wait = min(max(wait, 100*time.Microsecond), 50*time.Millisecond)
		t := time.NewTimer(wait)
		select {
		case <-stop:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// sink keeps the spin's arithmetic from being optimised away.
var sink uint64

// spin burns CPU until the process CPU clock reaches until (ns) or stop is closed.
func spin(until int64, stop <-chan struct{}) {
	x := sink
	for processCPU() < until {
		for i := 0; i < 2000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
		select {
		case <-stop:
			sink = x
			return
		default:
		}
	}
	sink = x
}

// processCPU returns the CPU time of the process, every thread, in nanoseconds.
func processCPU() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_PROCESS_CPUTIME_ID, &ts); err != nil {
		// Cannot fail on Linux for the calling process.
		panic("example meter: clock_gettime(CLOCK_PROCESS_CPUTIME_ID): " + err.Error())
	}
	return ts.Nano()
}
