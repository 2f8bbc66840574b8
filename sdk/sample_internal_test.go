package sdk

import (
	"math"
	"testing"
)

// A sample that did not read the clock-event reasons sends none (the host must not take 0 for
// "not throttled"); one that read them sends them, 0 included.
func TestSampleReasonsCrossOnlyWhenRead(t *testing.T) {
	nan := math.NaN()
	base := Sample{MonoNS: 1, PowerW: nan, AveragePowerW: nan, TemperatureC: nan, SMClockMHz: nan, MemoryClockMHz: nan, UtilizationPct: nan, MemoryUsedBytes: nan}
	notRead := base
	notRead.ClockEventReasons = ClockEventHWThermal // stale bits must not travel
	if p := sampleToProto(notRead); p.ClockEventReasons != nil {
		t.Errorf("unread reasons sent as %d", *p.ClockEventReasons)
	}
	read := base
	read.ReasonsRead = true
	if p := sampleToProto(read); p.ClockEventReasons == nil || *p.ClockEventReasons != 0 {
		t.Errorf("read reasons (none set) sent as %v, want 0", p.ClockEventReasons)
	}
	if got := ClockEventNames(ClockEventThrottling | ClockEventGPUIdle); len(got) != 5 || got[0] != "sw_power_cap" || got[4] != "hw_power_brake_slowdown" {
		t.Errorf("ClockEventNames = %v, want the five throttling reasons in bit order, not idle", got)
	}
}
