package energy

import (
	"math"
	"sort"
	"time"

	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/sdk"
)

// The uncertainty budget (docs/methodology.md, "Uncertainty budget", states the same model term
// by term). Every figure is a standard uncertainty (one σ) in joules; the 95 % interval is ± 2σ.
// The curve is read at an instant from the counter's update points (knots: the first sample of
// each counter value, and the first and last sample), placed at their expected update instants
// when the domain declares an update period (knotTime). Per read: quantisation q/√12; the edge
// gap, √(R²/12 + offset²) over the range the true value can take between the two knots around
// it (bounded by max power × gap); the update lag P·L/√12. Over an interval the two reads are
// independent (quadrature). Integrated or averaged power adds the coverage term (coverageTerm).

// studyCoverage is the share of a window that an integrated or averaged power reading represents
// when the meter says nothing better: the nvidia-smi sampling study found that on A100 and H100
// the power reading covers 25 ms of every 100 ms (docs/methodology.md).
const studyCoverage = 0.25

// point is the curve at one read instant.
type point struct {
	t      int64
	j      float64 // cumulative energy, J
	gap    float64 // σ of the interpolation between knots, J
	lag    float64 // maximum lag of the knots read, s
	powerW float64 // the local mean power, W
	// between is true when t fell strictly inside a span of more than one sample without a
	// counter update: the value is interpolated across a flat run (the split rule).
	between bool
}

func isKnot(s []sdk.Sample, j int) bool {
	return j == 0 || j == len(s)-1 || s[j].Energy != s[j-1].Energy
}

// knotTime is where the curve places knot k: a knot that is a counter update was seen at its
// sample, up to knotLag after the update happened, so it is placed half that lag earlier (the
// update instant's expected value). The first sample shows the counter as of its last update,
// up to one update period before it, so it is placed half an update period earlier. A last
// sample that repeats the value before it stays at its sample (it is no update point: readAt
// extrapolates past the last update instead, tailRead). upd is the domain's update period; when
// it is unknown (0) the lag is unknown too and knots stay at their samples, as At (negative)
// places them.
func knotTime(s []sdk.Sample, k int, upd time.Duration) int64 {
	switch {
	case upd <= 0:
		return s[k].MonoNS
	case k == 0:
		return s[0].MonoNS - int64(upd)/2
	case s[k].Energy == s[k-1].Energy:
		return s[k].MonoNS
	}
	return s[k].MonoNS - int64(knotLag(s, k, upd)*1e9)/2
}

// MaxEdgeWait caps EdgeWait: a meter that declares a longer update period has its window edges
// read past its last update point instead (tailRead), with the wider uncertainty that brings.
const MaxEdgeWait = 2 * time.Second

// EdgeWait is how long a session must run past an instant for its counters to show an update
// after it, as seen by a reading: the longest declared update period of its available domains
// plus its sampling interval, at most MaxEdgeWait; 0 when no domain declares an update period.
// The worker and lemctl measure wait this long after the meters start before the window starts,
// and after the window ends before they stop, so that each edge lies between two update points
// (docs/methodology.md, "The measured window and its edges").
func EdgeWait(s *sdk.Session) time.Duration {
	var d time.Duration
	for _, dom := range s.Domains {
		if dom.Available && dom.UpdatePeriod > 0 {
			d = max(d, dom.UpdatePeriod+s.Interval)
		}
	}
	return min(d, MaxEdgeWait)
}

// flatTail reports whether the last sample repeats the value before it: the session ended
// before the counter's next update, so the energy since the last update point is unseen.
func flatTail(s []sdk.Sample) bool {
	n := len(s)
	return n >= 2 && s[n-1].Energy == s[n-2].Energy
}

// prevKnot is the update point before knot k > 0.
func prevKnot(s []sdk.Sample, k int) int {
	j := k - 1
	for !isKnot(s, j) {
		j--
	}
	return j
}

// tailRead reads the curve at t past c, the last update point, when the last sample repeats c's
// value (flatTail) and the domain declares its update period. That repeat says only that the
// counter had not updated again by the end of the session — not that no energy flowed — so the
// value is extrapolated at the mean power of the span before c: v_c + P̂·x (x = t − c's placed
// time). The unseen power after c lies anywhere between 0 and max(P_max, P̂), so the true value
// lies in [v_c, v_c + max(P_max, P̂)·x], and the edge-gap term is that range's, as readAt's
// (without a declared maximum or a span before c, the bound is P̂ alone). The update lag is c's.
func tailRead(s []sdk.Sample, dom sdk.Domain, c int, t int64) point {
	upd := dom.UpdatePeriod
	tc := knotTime(s, c, upd)
	x := float64(t-tc) / 1e9
	vc := s[c].Energy.Joules()
	var pHat float64
	if c > 0 {
		pHat = segPower(s, prevKnot(s, c), c, upd)
	}
	bound := max(dom.MaxPower.Watts(), pHat)
	lo, hi := vc, vc+bound*x
	est := vc + pHat*x
	r, mid := hi-lo, (hi+lo)/2
	return point{t: t, j: est, gap: math.Sqrt(r*r/12 + (est-mid)*(est-mid)), lag: knotLag(s, c, upd), powerW: pHat, between: true}
}

// knots returns the indices of the knots whose placed times (knotTime) are at or before and at or
// after t (equal when t falls on one). ok is false outside the samples' span.
func knots(s []sdk.Sample, t int64, upd time.Duration) (k1, k2 int, ok bool) {
	n := len(s)
	if n == 0 || t < s[0].MonoNS || t > s[n-1].MonoNS {
		return 0, 0, false
	}
	i := sort.Search(n, func(i int) bool { return s[i].MonoNS >= t })
	k2 = i
	for !isKnot(s, k2) {
		k2++
	}
	if tk := knotTime(s, k2, upd); tk == t {
		return k2, k2, true
	} else if tk < t {
		// t lies between the knot's placed time and its sample: the bracket is the next one.
		k1 = k2
		if k2 == n-1 {
			return k2, k2, true
		}
		k2++
		for !isKnot(s, k2) {
			k2++
		}
		return k1, k2, true
	}
	k1 = i - 1
	for !isKnot(s, k1) {
		k1--
	}
	return k1, k2, true
}

// knotLag is the longest time by which knot k may have been seen after its counter updated.
func knotLag(s []sdk.Sample, k int, update time.Duration) float64 {
	if k == 0 || s[k].Energy == s[k-1].Energy {
		return update.Seconds() // the first or last sample: its value may be one update period old
	}
	gap := time.Duration(s[k].MonoNS - s[k-1].MonoNS)
	if update > 0 {
		gap = min(gap, update)
	}
	return gap.Seconds()
}

// readAt reads the curve of a domain at t with its uncertainty terms.
// With a phase model m (phase splits), a read between two knots follows the fitted phase powers
// instead of a straight line (phasemodel.go).
func readAt(s []sdk.Sample, dom sdk.Domain, t int64, m *phaseModel) (point, bool) {
	upd := dom.UpdatePeriod
	k1, k2, ok := knots(s, t, upd)
	if !ok {
		return point{}, false
	}
	pmax := dom.MaxPower.Watts()
	if n := len(s); upd > 0 && k2 == n-1 && flatTail(s) {
		// Past the last update point: c is k1, or the one before the last sample when t is it.
		c := k1
		if c == n-1 {
			c = prevKnot(s, c)
		}
		if t > knotTime(s, c, upd) {
			return tailRead(s, dom, c, t), true
		}
	}
	if k1 == k2 {
		p := point{t: t, j: s[k1].Energy.Joules(), lag: knotLag(s, k1, upd)}
		if k1 > 0 {
			a, _, _ := knots(s, knotTime(s, k1, upd)-1, upd)
			p.powerW = segPower(s, a, k1, upd)
		} else if k1 < len(s)-1 {
			_, b, _ := knots(s, s[k1].MonoNS+1, upd)
			p.powerW = segPower(s, k1, b, upd)
		}
		return p, true
	}
	ta, tb := knotTime(s, k1, upd), knotTime(s, k2, upd)
	v1, v2 := s[k1].Energy.Joules(), s[k2].Energy.Joules()
	x, y := float64(t-ta)/1e9, float64(tb-t)/1e9
	est := v1 + (v2-v1)*x/(x+y)
	pseg := segPower(s, k1, k2, upd)
	lo, hi := v1, v2 // no declared maximum power: anywhere between the two knots
	if pmax > 0 {
		bound := max(pmax, pseg)
		lo, hi = max(v1, v2-bound*y), min(v2, v1+bound*x)
	}
	var resid float64 = -1
	if m != nil {
		if w := m.weight(ta, tb); w > 0 {
			est = v1 + (v2-v1)*m.weight(ta, t)/w
			resid = m.residJ
		}
	}
	r, mid := hi-lo, (hi+lo)/2
	gap := math.Sqrt(r*r/12 + (est-mid)*(est-mid))
	if resid >= 0 {
		gap = min(gap, resid)
	}
	if k1 > 0 && k2 == k1+1 && s[k1].MonoNS == t {
		// t is the sample at which the counter was read just after it updated (a change knot
		// between its placed time and its sample): no interpolation error beyond the update lag.
		gap = 0
	}
	f := x / (x + y)
	p := point{t: t, j: est, gap: gap, powerW: pseg,
		lag:     (1-f)*knotLag(s, k1, upd) + f*knotLag(s, k2, upd),
		between: k2-k1 > 1}
	return p, true
}

// segPower is the mean power between knots i < j, W.
func segPower(s []sdk.Sample, i, j int, upd time.Duration) float64 {
	dt := float64(knotTime(s, j, upd)-knotTime(s, i, upd)) / 1e9
	if dt <= 0 {
		return 0
	}
	return (s[j].Energy.Joules() - s[i].Energy.Joules()) / dt
}

// budget is an interval's energy with its uncertainty terms (σ, J).
type budget struct {
	j                       float64
	quant, gap, update, cov float64
	coverage                float64
	between                 int // read instants interpolated across a flat run
}

func (b budget) u() float64 {
	return math.Sqrt(b.quant*b.quant + b.gap*b.gap + b.update*b.update + b.cov*b.cov)
}

// coverageOf is the share of the window the samples of a domain represent: 1 for a counter, the
// study's share for integrated or averaged power.
func coverageOf(dom sdk.Domain) float64 {
	if dom.Method == sdk.MethodPowerIntegration || dom.Confidence == sdk.ConfidenceAveraged {
		return studyCoverage
	}
	return 1
}

// interval returns the energy of a domain over [t0, t1] with its budget.
func interval(s []sdk.Sample, dom sdk.Domain, t0, t1 int64, m *phaseModel) (budget, bool) {
	a, ok0 := readAt(s, dom, t0, m)
	b, ok1 := readAt(s, dom, t1, m)
	if !ok0 || !ok1 {
		return budget{}, false
	}
	q := dom.Resolution.Joules()
	out := budget{j: b.j - a.j, coverage: coverageOf(dom)}
	out.quant = q / math.Sqrt(6) // two reads, each q/√12, independent
	out.gap = math.Hypot(a.gap, b.gap)
	// With a declared update period, knots sit at their expected update instants, so each read's
	// lag error is zero-mean and uniform on ± L/2: P·L/√12 per read, independent. Without one,
	// knots stay at their samples and each read is low by P·l, l uniform on [0, L] (L the sample
	// spacing): the spreads are independent, the means (P·L/2) are common and subtract.
	la, lb := a.powerW*a.lag, b.powerW*b.lag
	out.update = math.Hypot(la, lb) / math.Sqrt(12)
	if dom.UpdatePeriod <= 0 {
		out.update = math.Sqrt((la*la+lb*lb)/12 + (lb-la)*(lb-la)/4)
	}
	for _, p := range []point{a, b} {
		if p.between {
			out.between++
		}
	}
	if out.coverage < 1 {
		out.cov = coverageTerm(s, t0, t1, out.coverage)
	}
	return out, true
}

// coverageTerm is the error of power that represents only share c of [t0, t1]: the unseen share
// (1 − c) of each of the n sample intervals inside is taken to differ from the seen one by the
// spread s_P of the interval powers, independently: σ = (1 − c) × s_P × T / √n.
func coverageTerm(s []sdk.Sample, t0, t1 int64, c float64) float64 {
	in := inWindow(s, Interval{t0, t1})
	if len(in) < 3 {
		// Too few samples to see a spread: the whole unseen share is unknown within its own mean.
		return (1 - c) * max(0, segPowerOf(in)) * float64(t1-t0) / 1e9 / math.Sqrt(3)
	}
	var ps []float64
	for i := 1; i < len(in); i++ {
		if dt := float64(in[i].MonoNS-in[i-1].MonoNS) / 1e9; dt > 0 {
			ps = append(ps, (in[i].Energy.Joules()-in[i-1].Energy.Joules())/dt)
		}
	}
	n := float64(len(ps))
	mean := 0.0
	for _, p := range ps {
		mean += p / n
	}
	v := 0.0
	for _, p := range ps {
		v += (p - mean) * (p - mean) / (n - 1)
	}
	return (1 - c) * math.Sqrt(v) * float64(t1-t0) / 1e9 / math.Sqrt(n)
}

func segPowerOf(in []sdk.Sample) float64 {
	if len(in) < 2 {
		return 0
	}
	return (in[len(in)-1].Energy.Joules() - in[0].Energy.Joules()) / (float64(in[len(in)-1].MonoNS-in[0].MonoNS) / 1e9)
}

// add combines independent budgets (quadrature, term by term); the coverage terms of one domain
// are correlated across intervals and summed.
func (b *budget) add(o budget) {
	b.j += o.j
	b.quant = math.Hypot(b.quant, o.quant)
	b.gap = math.Hypot(b.gap, o.gap)
	b.update = math.Hypot(b.update, o.update)
	b.cov += o.cov
	b.between += o.between
	b.coverage = o.coverage
}

func terms(b budget) *results.UncertaintyTerms {
	return &results.UncertaintyTerms{QuantisationJ: b.quant, EdgeGapJ: b.gap, UpdateJ: b.update, CoverageJ: b.cov, Coverage: b.coverage}
}

// methodOf names how a domain's uncertainty was obtained.
func methodOf(dom sdk.Domain) string {
	m := "budget: quantisation + edge gap + update lag"
	if coverageOf(dom) < 1 {
		m += " + sampling coverage"
	}
	if dom.MaxPower <= 0 {
		m += "; no declared maximum power, edge gap bounded by the observed segment power"
	}
	return m
}

// quad is √(Σ x²).
func quad(xs ...float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x * x
	}
	return math.Sqrt(s)
}
