package aggregate

import (
	"sort"

	"github.com/lemctl/lemctl/host/results"
)

// view is one worker's view of a domain over one interval of its host's monotonic clock.
type view struct {
	rank       int
	start, end int64
	timeline   []results.Sample // non-decreasing in time and energy
}

// interval is [start, end] on one clock, in ns.
type interval struct{ start, end int64 }

// union merges intervals and returns them sorted, non-overlapping, with their total length.
func union(in []interval) ([]interval, int64) {
	if len(in) == 0 {
		return nil, 0
	}
	s := append([]interval(nil), in...)
	sort.Slice(s, func(i, j int) bool { return s[i].start < s[j].start || s[i].start == s[j].start && s[i].end < s[j].end })
	out := []interval{s[0]}
	for _, iv := range s[1:] {
		last := &out[len(out)-1]
		if iv.start <= last.end {
			last.end = max(last.end, iv.end)
			continue
		}
		out = append(out, iv)
	}
	var total int64
	for _, iv := range out {
		total += iv.end - iv.start
	}
	return out, total
}

// cumulativeAt returns the cumulative energy (µJ) of a timeline at t: linear interpolation
// between the samples around t; before the first or after the last sample, linear extrapolation
// with the power of the nearest segment (a window edge the meter did not sample exactly).
func cumulativeAt(tl []results.Sample, t int64) float64 {
	n := len(tl)
	switch {
	case n == 0:
		return 0
	case n == 1:
		return float64(tl[0].EnergyUJ)
	}
	i := sort.Search(n, func(i int) bool { return tl[i].MonoNS >= t })
	switch {
	case i < n && tl[i].MonoNS == t:
		return float64(tl[i].EnergyUJ)
	case i == 0:
		i = 1
	case i == n:
		i = n - 1
	}
	a, b := tl[i-1], tl[i]
	if b.MonoNS == a.MonoNS {
		return float64(b.EnergyUJ)
	}
	slope := (float64(b.EnergyUJ) - float64(a.EnergyUJ)) / float64(b.MonoNS-a.MonoNS)
	return float64(a.EnergyUJ) + slope*float64(t-a.MonoNS)
}

// samplesIn counts the timeline samples in [a, b].
func samplesIn(tl []results.Sample, a, b int64) int {
	lo := sort.Search(len(tl), func(i int) bool { return tl[i].MonoNS >= a })
	hi := sort.Search(len(tl), func(i int) bool { return tl[i].MonoNS > b })
	return hi - lo
}

// stitch returns a domain's energy (µJ) over the union of the views' intervals and the union's
// length (ns). The union is cut at every view's edges; each piece is covered by one or more views
// and its energy is taken from exactly one of them — the one with the most samples inside the
// piece, the lowest rank on a tie — as the difference of that view's cumulative curve at the
// piece's edges. Overlapping views are therefore never summed.
func stitch(views []view) (float64, int64) {
	if len(views) == 0 {
		return 0, 0
	}
	vs := append([]view(nil), views...)
	sort.SliceStable(vs, func(i, j int) bool { return vs[i].rank < vs[j].rank })
	edges := make([]int64, 0, 2*len(vs))
	ivs := make([]interval, 0, len(vs))
	for _, v := range vs {
		edges = append(edges, v.start, v.end)
		ivs = append(ivs, interval{v.start, v.end})
	}
	sort.Slice(edges, func(i, j int) bool { return edges[i] < edges[j] })
	_, length := union(ivs)
	var energy float64
	for k := 0; k+1 < len(edges); k++ {
		a, b := edges[k], edges[k+1]
		if a == b {
			continue
		}
		best, bestN := -1, -1
		for i, v := range vs {
			if v.start <= a && v.end >= b {
				if n := samplesIn(v.timeline, a, b); n > bestN {
					best, bestN = i, n
				}
			}
		}
		if best < 0 {
			continue // a gap between windows: no worker measured it
		}
		tl := vs[best].timeline
		if d := cumulativeAt(tl, b) - cumulativeAt(tl, a); d > 0 {
			energy += d
		}
	}
	return energy, length
}
