// Package clock is the one clock every lemctl process uses for timestamps that cross process
// boundaries on a host: CLOCK_MONOTONIC nanoseconds read with clock_gettime.
//
// Go's time.Now carries a monotonic reading but never exposes its absolute value, so two
// processes cannot compare them; CLOCK_MONOTONIC is shared by every process on a Linux host.
// Wall-clock time is for display only and must never be subtracted to measure an interval.
package clock

import (
	"time"

	"golang.org/x/sys/unix"
)

// Mono returns the current CLOCK_MONOTONIC time in nanoseconds.
func Mono() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		// clock_gettime(CLOCK_MONOTONIC) cannot fail on Linux with a valid pointer.
		panic("clock: clock_gettime(CLOCK_MONOTONIC): " + err.Error())
	}
	return ts.Nano()
}

// Stamp is one instant read on both clocks: Mono for arithmetic, Wall for display.
type Stamp struct {
	MonoNS int64 `json:"mono_ns"`
	WallNS int64 `json:"unix_ns"`
}

// Now reads both clocks as close together as possible.
func Now() Stamp {
	m := Mono()
	w := time.Now().UnixNano()
	return Stamp{MonoNS: m, WallNS: w}
}

// WallAt converts a monotonic timestamp to wall-clock nanoseconds using the offset between the
// two clocks now. It is for display: the offset drifts when the wall clock is stepped.
func WallAt(monoNS int64) int64 {
	s := Now()
	return s.WallNS - (s.MonoNS - monoNS)
}
