package study

import (
	"fmt"
	"math/rand/v2"
)

// Point is one setting of the study: the dotted keys it sets on the base experiment.
type Point struct {
	ID       string    `json:"id"`
	Settings []Setting `json:"settings"`
}

// SettingsMap is the point's settings as a map (the stored shape).
func (p Point) SettingsMap() map[string]any {
	m := make(map[string]any, len(p.Settings))
	for _, s := range p.Settings {
		m[s.Key] = s.Value
	}
	return m
}

// Label is the point's settings as "key=value key=value".
func (p Point) Label() string {
	s := ""
	for i, x := range p.Settings {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%s=%v", x.Key, x.Value)
	}
	return s
}

// Slot is one experiment of the plan: a point's cycle (1-based).
type Slot struct {
	Point int `json:"point"` // index into the points
	Cycle int `json:"cycle"`
}

// Points returns the study's points in plan order: the grid's Cartesian product (the first axis
// varies slowest) or the explicit points in file order.
func (f *File) PointList() []Point {
	var sets [][]Setting
	if len(f.Axes) > 0 {
		sets = [][]Setting{nil}
		for _, ax := range f.Axes {
			var next [][]Setting
			for _, prev := range sets {
				for _, v := range ax.Values {
					next = append(next, append(append([]Setting{}, prev...), Setting{Key: ax.Key, Value: v}))
				}
			}
			sets = next
		}
	} else {
		sets = f.Points
	}
	width := len(fmt.Sprint(len(sets) - 1))
	if width < 2 {
		width = 2
	}
	out := make([]Point, len(sets))
	for i, s := range sets {
		out[i] = Point{ID: fmt.Sprintf("p%0*d", width, i), Settings: s}
	}
	return out
}

// Schedule is the order the experiments run in: grouped (each point's cycles together),
// interleaved (cycle by cycle over the points) or shuffled (a permutation of the grouped order
// drawn from seed; the same seed gives the same order).
func Schedule(points, cycles int, order string, seed int64) []Slot {
	var out []Slot
	if order == OrderInterleaved {
		for c := 1; c <= cycles; c++ {
			for p := 0; p < points; p++ {
				out = append(out, Slot{Point: p, Cycle: c})
			}
		}
		return out
	}
	for p := 0; p < points; p++ {
		for c := 1; c <= cycles; c++ {
			out = append(out, Slot{Point: p, Cycle: c})
		}
	}
	if order == OrderShuffled {
		r := rand.New(rand.NewPCG(uint64(seed), 0x6c656d63746c)) // #nosec G404 -- an order, not a secret
		r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	}
	return out
}
