package sampler

import (
	"encoding/binary"
	"errors"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// fdTicker ticks from a timerfd: a kernel timer on CLOCK_MONOTONIC with a nanosecond period that
// does not drift. The sampler uses it rather than a time.Ticker because the Go runtime waits for
// timers in epoll with a millisecond timeout, so every tick is two wake-ups (the truncated wait,
// then the last fraction of a millisecond), and on a small or virtualised machine wake-ups are
// nearly all of a sampler's CPU time (docs/performance.md, "nvml sampler overhead"). A thread
// blocked in poll on the timerfd wakes once per tick.
//
// Wait and Close belong to the sampling goroutine; Stop may be called from any goroutine.
type fdTicker struct {
	mu     sync.Mutex // guards closed against Stop writing to a closed descriptor
	closed bool
	timer  int // timerfd
	wake   int // eventfd that Stop writes to
}

// newFDTicker starts a timerfd that first fires one period from now.
func newFDTicker(period time.Duration) (*fdTicker, error) {
	timer, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(timer)
		return nil, err
	}
	ts := unix.NsecToTimespec(int64(period))
	if err := unix.TimerfdSettime(timer, 0, &unix.ItimerSpec{Interval: ts, Value: ts}, nil); err != nil {
		unix.Close(timer)
		unix.Close(wake)
		return nil, err
	}
	return &fdTicker{timer: timer, wake: wake}, nil
}

// errTickerStopped is what Wait returns once Stop was called.
var errTickerStopped = errors.New("ticker stopped")

// Wait blocks until the next tick or until Stop (errTickerStopped). It returns how many ticks
// expired since the last Wait: more than one when the caller was too busy to read them, which
// are folded into one reading (as a time.Ticker drops them) and counted.
func (t *fdTicker) Wait() (uint64, error) {
	for {
		fds := []unix.PollFd{{Fd: int32(t.timer), Events: unix.POLLIN}, {Fd: int32(t.wake), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, -1); err != nil {
			if err == unix.EINTR {
				continue
			}
			return 0, err
		}
		if fds[1].Revents != 0 {
			return 0, errTickerStopped
		}
		if fds[0].Revents&unix.POLLIN != 0 {
			var expirations [8]byte
			n, err := unix.Read(t.timer, expirations[:])
			if err != nil && err != unix.EAGAIN && err != unix.EINTR {
				return 0, err
			}
			if n != 8 {
				return 1, nil
			}
			return max(1, binary.NativeEndian.Uint64(expirations[:])), nil
		}
		if fds[0].Revents != 0 {
			return 0, errors.New("timerfd: poll reported an error on the timer")
		}
	}
}

// Stop makes the current or next Wait return errTickerStopped.
func (t *fdTicker) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		_, _ = unix.Write(t.wake, one[:])
	}
}

// Close releases the descriptors; Stop after Close does nothing.
func (t *fdTicker) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		t.closed = true
		unix.Close(t.timer)
		unix.Close(t.wake)
	}
}
