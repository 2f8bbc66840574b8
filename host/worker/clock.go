package worker

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/sdk/clock"
)

// clockOffset samples unix − mono (ns) from the closest of a few back-to-back readings, so that
// a preemption between the two clock reads does not skew it.
func clockOffset() int64 {
	var best, bestGap int64
	for i := 0; i < 5; i++ {
		m0 := clock.Mono()
		s := clock.Now()
		m1 := clock.Mono()
		if gap := m1 - m0; i == 0 || gap < bestGap {
			best, bestGap = s.WallNS-s.MonoNS, gap
		}
	}
	return best
}

// adjtimex reads the kernel's clock state; a variable so that tests can replace it.
type adjtimexFunc func(*unix.Timex) (int, error)

// clockSync reads the kernel's NTP state through adjtimex (read-only: Modes 0).
func clockSync(adj adjtimexFunc) results.ClockSync {
	out := results.ClockSync{Source: "adjtimex"}
	if adj == nil {
		adj = unix.Adjtimex
	}
	var tx unix.Timex
	state, err := adj(&tx)
	if err != nil {
		out.Reason = fmt.Sprintf("adjtimex: %v", err)
		return out
	}
	synced := state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0
	maxe, este := int64(tx.Maxerror), int64(tx.Esterror)
	out.Synchronized, out.MaxErrorUS, out.EstErrorUS = &synced, &maxe, &este
	if !synced {
		out.Reason = "the kernel reports the clock unsynchronized (no NTP/chrony discipline, or it lost its source)"
	}
	return out
}
