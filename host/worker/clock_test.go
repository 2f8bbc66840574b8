package worker

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/lemctl/lemctl/sdk/clock"
)

// TestClockSync: the kernel's state as adjtimex reports it — synchronized with its errors,
// unsynchronized (STA_UNSYNC or TIME_ERROR) with why, unreadable with the error.
func TestClockSync(t *testing.T) {
	fake := func(state int, status int32, err error) adjtimexFunc {
		return func(tx *unix.Timex) (int, error) {
			if tx.Modes != 0 {
				t.Errorf("adjtimex called with modes %#x: it must only read", tx.Modes)
			}
			tx.Status, tx.Maxerror, tx.Esterror = status, 12000, 300
			return state, err
		}
	}
	s := clockSync(fake(unix.TIME_OK, 0, nil))
	if s.Synchronized == nil || !*s.Synchronized || *s.MaxErrorUS != 12000 || *s.EstErrorUS != 300 || s.Reason != "" {
		t.Errorf("synchronized: %+v", s)
	}
	for _, u := range []struct {
		state  int
		status int32
	}{{unix.TIME_OK, unix.STA_UNSYNC}, {unix.TIME_ERROR, 0}} {
		s := clockSync(fake(u.state, u.status, nil))
		if s.Synchronized == nil || *s.Synchronized || !strings.Contains(s.Reason, "unsynchronized") {
			t.Errorf("state %d status %#x: %+v, want unsynchronized with why", u.state, u.status, s)
		}
	}
	s = clockSync(fake(0, 0, errors.New("operation not permitted")))
	if s.Synchronized != nil || !strings.Contains(s.Reason, "operation not permitted") {
		t.Errorf("unreadable: %+v", s)
	}
}

// TestClockOffset: the sampled offset maps this host's monotonic clock to wall time as a fresh
// reading does, to within a minute (a bound no load reaches, not a timing claim:
// a wrong sign or clock would be off by decades).
func TestClockOffset(t *testing.T) {
	off := clockOffset()
	now := clock.Now()
	if d := now.WallNS - (now.MonoNS + off); d < -60e9 || d > 60e9 {
		t.Errorf("offset %d ns maps mono %d to %d, wall is %d", off, now.MonoNS, now.MonoNS+off, now.WallNS)
	}
}
