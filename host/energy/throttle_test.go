package energy

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/sdk"
)

// clockTrace is a simulated GPU timeline sampled every step over [0, end] whose clocks and
// clock-event reasons (none set) are read at every sample.
func clockTrace(end int64, step time.Duration) sdk.DomainEnergy {
	d := constant("gpu:0", sdk.DomainGPU, 300, 0, end, step)
	for i := range d.Samples {
		s := &d.Samples[i]
		s.ReasonsRead, s.SMClockMHz, s.MemoryClockMHz = true, 1980, 2619
	}
	return d
}

func finding(fs []results.Finding, code string) *results.Finding {
	for i := range fs {
		if fs[i].Code == code {
			return &fs[i]
		}
	}
	return nil
}

func TestThrottleShareOfASimulatedTrace(t *testing.T) {
	const ms = int64(time.Millisecond)
	// Thermal slowdown during [3 s, 4 s) and a power cap during [6.5 s, 7 s) of a 10 s window
	// [1 s, 11 s], sampled every 100 ms: 1.5 s of 10 s throttled.
	d := clockTrace(12*sec, 100*time.Millisecond)
	for i := range d.Samples {
		s := &d.Samples[i]
		switch {
		case s.MonoNS >= 3*sec && s.MonoNS < 4*sec:
			s.ClockEventReasons = sdk.ClockEventHWThermal
		case s.MonoNS >= 6500*ms && s.MonoNS < 7*sec:
			s.ClockEventReasons = sdk.ClockEventSWPowerCap | sdk.ClockEventGPUIdle
		case s.MonoNS >= 11*sec:
			s.ClockEventReasons = sdk.ClockEventHWThermal // after the window
		case s.MonoNS >= 8*sec && s.MonoNS < 9*sec:
			s.ClockEventReasons = sdk.ClockEventGPUIdle // idle is not throttling
		}
	}
	w := Interval{1 * sec, 11 * sec}
	share, reasons, ok := ThrottleShare(d.Samples, w)
	if !ok || math.Abs(share-0.15) > 1e-9 {
		t.Fatalf("share = %v (ok %v), want 0.15", share, ok)
	}
	if reasons != sdk.ClockEventHWThermal|sdk.ClockEventSWPowerCap {
		t.Errorf("reasons = %#x, want hw thermal and sw power cap only", reasons)
	}

	for _, tc := range []struct {
		limit float64
		sev   string
	}{{0.05, results.SeverityError}, {0.15, results.SeverityWarning}, {0.5, results.SeverityWarning}} {
		th := defaults()
		th.MaxThrottleShare = tc.limit
		e, fs := Compute(Input{Measurements: []*sdk.Measurement{{Domains: []sdk.DomainEnergy{d}}}, Window: w, Thresholds: th})
		f := finding(fs, CodeThrottledWindow)
		if f == nil {
			t.Fatalf("limit %g: no %s finding in %v", tc.limit, CodeThrottledWindow, codes(fs))
		}
		if f.Severity != tc.sev || f.Domain != "gpu:0" {
			t.Errorf("limit %g: severity %s domain %q, want %s on gpu:0", tc.limit, f.Severity, f.Domain, tc.sev)
		}
		for _, want := range []string{"15.0 %", "hw_thermal_slowdown", "sw_power_cap", "validity.max_throttle_share"} {
			if !strings.Contains(f.Message, want) {
				t.Errorf("limit %g: message %q lacks %q", tc.limit, f.Message, want)
			}
		}
		if v := results.ValidityOf(fs, e.Domains); v.Valid != (tc.sev != results.SeverityError) {
			t.Errorf("limit %g: valid = %v with a %s finding", tc.limit, v.Valid, tc.sev)
		}
		tl := e.Domains[0].Timeline
		if tl[0].SMClockMHz == nil || *tl[0].SMClockMHz != 1980 || tl[0].MemoryClockMHz == nil || tl[0].ClockEventReasons == nil {
			t.Errorf("the timeline lacks the clocks and reasons: %+v", tl[0])
		}
	}
}

func TestThrottleShareRules(t *testing.T) {
	w := Interval{0, 10 * sec}
	// Reasons hold until the next sample that read them; samples that did not read them are
	// skipped, whatever their bits.
	s := []sdk.Sample{
		{MonoNS: 2 * sec, ReasonsRead: true, ClockEventReasons: sdk.ClockEventHWSlowdown}, // also covers [0, 2 s)
		{MonoNS: 3 * sec, ClockEventReasons: 0},                                           // not read: ignored
		{MonoNS: 5 * sec, ReasonsRead: true},
		{MonoNS: 6 * sec, ClockEventReasons: sdk.ClockEventHWThermal},                       // not read: ignored
		{MonoNS: 9 * sec, ReasonsRead: true, ClockEventReasons: sdk.ClockEventHWPowerBrake}, // holds to the end
	}
	share, reasons, ok := ThrottleShare(s, w)
	if !ok || math.Abs(share-0.6) > 1e-9 || reasons != sdk.ClockEventHWSlowdown|sdk.ClockEventHWPowerBrake {
		t.Errorf("share %v reasons %#x ok %v, want 0.6 (5 s + 1 s of 10 s), hw slowdown and power brake", share, reasons, ok)
	}
	if _, _, ok := ThrottleShare([]sdk.Sample{{MonoNS: 1, ClockEventReasons: sdk.ClockEventHWThermal}}, w); ok {
		t.Error("a timeline that never read the reasons must give no share")
	}
	if f := throttled("g", []sdk.Sample{{MonoNS: 0, ReasonsRead: true}, {MonoNS: 10 * sec, ReasonsRead: true}}, w, 0); f != nil {
		t.Errorf("no throttling must give no finding, got %+v", f)
	}
	// A limit of 0: any throttling makes the result invalid.
	if f := throttled("g", s, w, 0); f == nil || f.Severity != results.SeverityError {
		t.Errorf("limit 0: %+v, want an error", f)
	}
}
