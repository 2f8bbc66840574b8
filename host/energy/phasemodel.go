package energy

import (
	"math"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/lemctl/lemctl/sdk"
)

// Phase splits between counter updates (docs/methodology.md, "Phases: prefill and decode").
//
// A batch's first token rarely falls on a counter update: with an NVML-like counter that updates
// every 20–100 ms a prefill is often shorter than one update period, and the energy of the span
// between two updates must be split at the first token. Plain linear interpolation spreads the
// span's energy evenly, which moves prefill energy (high power) into decode at every batch — the
// same sign every time, a bias that does not average out. The rule lemctl applies instead:
//
//  1. over the domain's update spans (knot to knot) that meet the window, fit one mean power per
//     phase — prefill, decode, and everything else — by least squares on the spans' energies
//     (each span's energy = Σ phase power × the time the span spends in that phase);
//  2. inside a span, the cumulative curve rises in proportion to fitted power × time, so a span
//     that holds a phase boundary is split where the fitted powers put it; the span's energy is
//     kept exactly;
//  3. the edge-gap term of such a read becomes the fit's residual standard deviation per span
//     (how far the spans depart from phase-constant power), capped by the model-free range term
//     (max power × gap) — the uncertainty is widened by what the phase model cannot explain.
//
// Without a usable fit (fewer spans than phases + 2, a singular system, or a fitted power that is
// not positive) the split falls back to linear interpolation with the model-free range term.

const (
	phPrefill = iota
	phDecode
	phOther
	nPhases
)

type phaseModel struct {
	prefill, decode []Interval
	powerW          [nPhases]float64
	residJ          float64 // residual standard deviation of one span's energy, J
}

// overlapS is how long [a, b] spends in each phase, in seconds.
func (m *phaseModel) overlapS(a, b int64) [nPhases]float64 {
	var o [nPhases]float64
	in := func(ivs []Interval) float64 {
		s := int64(0)
		for _, iv := range ivs {
			if lo, hi := max(a, iv.StartMonoNS), min(b, iv.EndMonoNS); hi > lo {
				s += hi - lo
			}
		}
		return float64(s) / 1e9
	}
	o[phPrefill], o[phDecode] = in(m.prefill), in(m.decode)
	o[phOther] = max(0, float64(b-a)/1e9-o[phPrefill]-o[phDecode])
	return o
}

// weight is Σ fitted power × time over [a, b] (J as the model sees it).
func (m *phaseModel) weight(a, b int64) float64 {
	o := m.overlapS(a, b)
	w := 0.0
	for i := range o {
		w += m.powerW[i] * o[i]
	}
	return w
}

// fitPhases fits the phase powers of one domain; nil when there is no usable fit.
func fitPhases(s []sdk.Sample, upd time.Duration, window Interval, prefill, decode []Interval) *phaseModel {
	if len(prefill) == 0 && len(decode) == 0 {
		return nil
	}
	m := &phaseModel{prefill: prefill, decode: decode}
	var rows [][nPhases]float64
	var energies []float64
	prev := -1
	for k := range s {
		if !isKnot(s, k) {
			continue
		}
		if prev < 0 {
			prev = k
			continue
		}
		a, b := knotTime(s, prev, upd), knotTime(s, k, upd)
		if b > window.StartMonoNS && a < window.EndMonoNS {
			rows = append(rows, m.overlapS(a, b))
			energies = append(energies, s[k].Energy.Joules()-s[prev].Energy.Joules())
		}
		prev = k
	}
	// Only the phases that some span spends time in are fitted.
	var cols []int
	for p := 0; p < nPhases; p++ {
		for _, r := range rows {
			if r[p] > 0 {
				cols = append(cols, p)
				break
			}
		}
	}
	n, c := len(rows), len(cols)
	if c == 0 || n < c+2 {
		return nil
	}
	a := mat.NewDense(n, c, nil)
	for i, r := range rows {
		for j, p := range cols {
			a.Set(i, j, r[p])
		}
	}
	b := mat.NewVecDense(n, energies)
	var x mat.VecDense
	if err := x.SolveVec(a, b); err != nil {
		return nil
	}
	for j, p := range cols {
		if !(x.AtVec(j) > 0) {
			return nil
		}
		m.powerW[p] = x.AtVec(j)
	}
	var r mat.VecDense
	r.MulVec(a, &x)
	r.SubVec(b, &r)
	m.residJ = math.Sqrt(mat.Dot(&r, &r) / float64(n-c))
	return m
}
