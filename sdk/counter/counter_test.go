package counter

import (
	"strings"
	"testing"
	"time"

	"github.com/lemctl/lemctl/sdk/units"
)

type read struct {
	atMS int64
	raw  uint64
	want EventKind
}

func TestAccumulator(t *testing.T) {
	const ms = int64(time.Millisecond)
	cases := []struct {
		name      string
		cfg       Config
		reads     []read
		wantTotal units.Energy
		resets    int
		wraps     int
	}{
		{
			name:      "steady",
			cfg:       Config{Range: 1000, MaxPower: units.Watt * 100},
			reads:     []read{{0, 100, Normal}, {1, 150, Normal}, {2, 200, Normal}},
			wantTotal: 100,
		},
		{
			name: "one wrap",
			// range 999 → modulus 1000: 900 → (1000) → 50 is 150 µJ.
			cfg:       Config{Range: 999, MaxPower: units.Watt},
			reads:     []read{{0, 800, Normal}, {100, 900, Normal}, {200, 50, Wrap}, {300, 150, Normal}},
			wantTotal: 100 + 150 + 100,
			wraps:     1,
		},
		{
			name: "two wraps between reads is a reset",
			// 2 wraps ≈ 2000+ µJ in 100 ms at most 1 W (100,000 µJ/100ms)… use a small max power so
			// the implied delta is impossible: range 999, max 5 mW → 500 µJ/100 ms (×1.5 slack).
			cfg:       Config{Range: 999, MaxPower: 5 * units.Milliwatt},
			reads:     []read{{0, 500, Normal}, {100, 600, Normal}, {200, 400, Reset}, {300, 450, Normal}},
			wantTotal: 100 + 50,
			resets:    1,
		},
		{
			name:      "reset to zero on a wrapping counter",
			cfg:       Config{Range: 1 << 32, MaxPower: units.Watt},
			reads:     []read{{0, 3_000_000_000, Normal}, {100, 3_000_050_000, Normal}, {200, 10, Reset}, {300, 60_010, Normal}},
			wantTotal: 50_000 + 60_000,
			resets:    1,
		},
		{
			name:      "backwards counter without a range (NVML driver reload)",
			cfg:       Config{MaxPower: 700 * units.Watt},
			reads:     []read{{0, 5_000_000, Normal}, {100, 5_070_000, Normal}, {200, 1_000, Reset}, {300, 71_000, Normal}},
			wantTotal: 70_000 + 70_000,
			resets:    1,
		},
		{
			name:      "forward jump larger than max power × elapsed",
			cfg:       Config{MaxPower: 100 * units.Watt},
			reads:     []read{{0, 0, Normal}, {100, 10_000_000, Normal}, {200, 900_000_000, Reset}, {300, 910_000_000, Normal}},
			wantTotal: 20_000_000,
			resets:    1,
		},
		{
			name:      "no max power: big forward deltas are trusted",
			cfg:       Config{},
			reads:     []read{{0, 0, Normal}, {1, 1 << 40, Normal}},
			wantTotal: 1 << 40,
		},
		{
			name: "counter updating every 10 ms read every 1 ms stays within the bound",
			// 100 W for 10 ms = 1 J in one step although only 1 ms elapsed between reads.
			cfg:       Config{MaxPower: 100 * units.Watt},
			reads:     []read{{0, 0, Normal}, {1, 0, Normal}, {10, 1_000_000, Normal}, {11, 1_000_000, Normal}, {20, 2_000_000, Normal}},
			wantTotal: 2_000_000,
		},
		{
			// A counter whose writer stalls (a starved process behind a fake sysfs file, or a
			// driver updating irregularly) holds its value for 200 ms, then catches up by 200 ms
			// of energy within one 20 ms poll. At 40 W under a 200 W bound that is legitimate: the
			// delta spans from the read that first showed the held value, not from the last poll.
			name: "held value that catches up after a long gap is not a reset",
			cfg:  Config{Range: 262143328850, MaxPower: 200 * units.Watt},
			reads: []read{{0, 0, Normal}, {20, 800_000, Normal}, {40, 800_000, Normal}, {120, 800_000, Normal},
				{200, 800_000, Normal}, {220, 8_800_000, Normal}, {240, 9_600_000, Normal}},
			wantTotal: 9_600_000,
		},
		{
			// The same catch-up without a held value (it changed at every poll) is still a reset.
			name: "a jump after a changing value is still a reset",
			cfg:  Config{Range: 262143328850, MaxPower: 200 * units.Watt},
			reads: []read{{0, 0, Normal}, {20, 800_000, Normal}, {40, 1_600_000, Normal}, {60, 2_400_000, Normal},
				{80, 10_400_000, Reset}, {100, 11_200_000, Normal}},
			wantTotal: 3_200_000,
			resets:    1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := New(tc.cfg)
			for i, r := range tc.reads {
				if got := a.Add(r.atMS*ms, r.raw); got != r.want {
					t.Fatalf("read %d (%d at %d ms): got %v, want %v", i, r.raw, r.atMS, got, r.want)
				}
			}
			if a.Total() != tc.wantTotal {
				t.Errorf("total = %d µJ, want %d µJ", a.Total(), tc.wantTotal)
			}
			if got := len(a.Resets()); got != tc.resets {
				t.Errorf("resets = %d, want %d (%v)", got, tc.resets, a.Events())
			}
			wraps := 0
			for _, e := range a.Events() {
				if e.Kind == Wrap {
					wraps++
				}
			}
			if wraps != tc.wraps {
				t.Errorf("wraps = %d, want %d", wraps, tc.wraps)
			}
		})
	}
}

// TestAddReadSpansTheReadDelay: a poller descheduled between reading the counter and stamping
// the reading sees a later stamp than the read; the next delta spans from the read's start, so
// the catch-up is not a reset (with Add, stamped only after the read, it would be).
func TestAddReadSpansTheReadDelay(t *testing.T) {
	const ms = int64(time.Millisecond)
	cfg := Config{MaxPower: 200 * units.Watt}
	// Read 1 starts at 0 ms, reads 0 µJ; the reader is descheduled and stamps it at 200 ms. Read
	// 2 at 220 ms sees 40 W × 220 ms = 8.8 J: 8.8 J in 20 ms would be 440 W, over 200 W × 1.5.
	a := New(cfg)
	a.AddRead(0, 200*ms, 0)
	if got := a.AddRead(220*ms, 220*ms, 8_800_000); got != Normal || a.Total() != 8_800_000 {
		t.Errorf("AddRead: %v, total %d µJ; want normal, 8800000 µJ (events %v)", got, a.Total(), a.Events())
	}
	b := New(cfg)
	b.Add(200*ms, 0)
	if got := b.Add(220*ms, 8_800_000); got != Reset {
		t.Errorf("Add with only the late stamp: %v, want reset (the test no longer shows the difference)", got)
	}
}

func TestUpdatesAndUnchanged(t *testing.T) {
	a := New(Config{})
	ms := int64(time.Millisecond)
	for i, raw := range []uint64{0, 0, 5, 5, 5, 9} {
		a.Add(int64(i)*100*ms, raw)
	}
	if a.Updates() != 2 {
		t.Errorf("updates = %d, want 2", a.Updates())
	}
	if a.Unchanged() != 0 {
		t.Errorf("unchanged = %v, want 0 right after a change", a.Unchanged())
	}
	a.Add(600*ms, 9)
	a.Add(700*ms, 9)
	if a.Unchanged() != 200*time.Millisecond {
		t.Errorf("unchanged = %v, want 200ms", a.Unchanged())
	}
}

func TestPollBound(t *testing.T) {
	// RAPL: 262,143,328,850 µJ range at 300 W wraps in ≈ 874 s; poll at least every ≈ 437 s.
	got := PollBound(262_143_328_850, 300*units.Watt)
	if got < 436*time.Second || got > 438*time.Second {
		t.Errorf("PollBound = %v, want ≈ 437 s", got)
	}
	if PollBound(0, units.Watt) != 0 || PollBound(1000, 0) != 0 {
		t.Error("PollBound without range or max power must be 0 (unbounded)")
	}
}

// TestResetBoundsTheUncountedEnergy: a reset's message says how much energy the total can lack
// (max power × the span the uncounted delta covered), the error the reset adds.
func TestResetBoundsTheUncountedEnergy(t *testing.T) {
	const ms = int64(time.Millisecond)
	a := New(Config{MaxPower: 100 * units.Watt})
	a.Add(0, 0)
	a.Add(100*ms, 10_000_000)
	if a.Add(200*ms, 900_000_000) != Reset {
		t.Fatalf("no reset: %v", a.Events())
	}
	if msg, want := a.Last().Message, "the total lacks at most 10 J (max power 100 W × 100ms)"; !strings.Contains(msg, want) {
		t.Errorf("message %q lacks %q", msg, want)
	}
}
