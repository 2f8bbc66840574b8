package aggregate

import (
	"math"
	"testing"

	"github.com/lemctl/lemctl/host/results"
)

// curve samples a constant power p (W) every step ns over [from, to], starting the cumulative
// count at offset µJ (each worker's session starts its own count).
func curve(from, to, step int64, p float64, offset uint64) []results.Sample {
	var s []results.Sample
	for t := from; ; t += step {
		t = min(t, to)
		s = append(s, results.Sample{MonoNS: t, EnergyUJ: offset + uint64(math.Round(p*float64(t-from)/1e3))})
		if t == to {
			return s
		}
	}
}

func TestCumulativeAt(t *testing.T) {
	tl := []results.Sample{{MonoNS: 10, EnergyUJ: 100}, {MonoNS: 20, EnergyUJ: 200}, {MonoNS: 30, EnergyUJ: 400}}
	tests := []struct {
		t    int64
		want float64
	}{
		{10, 100}, {15, 150}, {20, 200}, {25, 300}, {30, 400},
		{5, 50},   // before the first sample: the first segment's slope
		{40, 600}, // after the last: the last segment's slope
	}
	for _, tc := range tests {
		if got := cumulativeAt(tl, tc.t); got != tc.want {
			t.Errorf("cumulativeAt(%d) = %g, want %g", tc.t, got, tc.want)
		}
	}
	if got := cumulativeAt(tl[:1], 99); got != 100 {
		t.Errorf("one sample: %g", got)
	}
}

func TestStitch(t *testing.T) {
	const s = int64(1e9)
	tests := []struct {
		name       string
		views      []view
		wantJ      float64
		wantUnionS float64
	}{
		{
			name:  "one view",
			views: []view{{rank: 0, start: 0, end: 10 * s, timeline: curve(0, 10*s, s/10, 100, 0)}},
			wantJ: 1000, wantUnionS: 10,
		},
		{
			name: "staggered views of one constant domain: rate × (max end − min start), not the sum",
			views: []view{
				{rank: 0, start: 0, end: 20 * s, timeline: curve(0, 20*s, s/4, 50, 7)},
				{rank: 1, start: 5 * s, end: 25 * s, timeline: curve(5*s, 25*s, s*3/10, 50, 123456)},
			},
			wantJ: 50 * 25, wantUnionS: 25,
		},
		{
			name: "window edges between samples are interpolated",
			views: []view{
				{rank: 0, start: 1*s + s/3, end: 9*s + s/7, timeline: curve(0, 10*s, s, 10, 0)},
			},
			wantJ: 10 * (8 + 1.0/7 - 1.0/3), wantUnionS: 8 + 1.0/7 - 1.0/3,
		},
		{
			name: "a gap between windows is not measured",
			views: []view{
				{rank: 0, start: 0, end: 10 * s, timeline: curve(0, 10*s, s, 10, 0)},
				{rank: 1, start: 20 * s, end: 30 * s, timeline: curve(20*s, 30*s, s, 10, 0)},
			},
			wantJ: 200, wantUnionS: 20,
		},
		{
			name: "an overlap is taken from one view: the one with more samples there",
			views: []view{
				// Rank 0 samples coarsely and reads 10 W; rank 1 samples finely and reads 12 W over
				// the same 10 s: the result is one view's reading, never 10+12.
				{rank: 0, start: 0, end: 10 * s, timeline: curve(0, 10*s, 5*s, 10, 0)},
				{rank: 1, start: 0, end: 10 * s, timeline: curve(0, 10*s, s/10, 12, 0)},
			},
			wantJ: 120, wantUnionS: 10,
		},
		{
			name: "nested window: the outer view covers the parts outside the inner one",
			views: []view{
				{rank: 0, start: 0, end: 30 * s, timeline: curve(0, 30*s, s, 20, 0)},
				{rank: 1, start: 10 * s, end: 20 * s, timeline: curve(10*s, 20*s, s, 20, 0)},
			},
			wantJ: 600, wantUnionS: 30,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			uj, uns := stitch(tc.views)
			if got := uj / 1e6; math.Abs(got-tc.wantJ) > 1e-3 {
				t.Errorf("energy = %.6f J, want %.6f J", got, tc.wantJ)
			}
			if got := float64(uns) / 1e9; math.Abs(got-tc.wantUnionS) > 1e-9 {
				t.Errorf("union = %g s, want %g s", got, tc.wantUnionS)
			}
		})
	}
}

func TestUnion(t *testing.T) {
	got, total := union([]interval{{5, 10}, {0, 3}, {2, 4}, {10, 12}, {20, 21}})
	want := []interval{{0, 4}, {5, 12}, {20, 21}}
	if len(got) != len(want) || total != 12 {
		t.Fatalf("union = %v (%d), want %v (12)", got, total, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("union = %v, want %v", got, want)
		}
	}
}
