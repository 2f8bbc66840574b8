package results

import (
	"math"
	"slices"
)

// Percentile returns the p-th quantile (0 ≤ p ≤ 1) of sorted values by linear interpolation
// between closest ranks: h = (n−1)·p, x[⌊h⌋] + (h−⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋]). This is Hyndman &
// Fan's type 7, the default of numpy and R. sorted must be ascending and non-empty.
func Percentile(sorted []float64, p float64) float64 {
	n := len(sorted)
	if n == 1 {
		return sorted[0]
	}
	h := float64(n-1) * p
	lo := int(math.Floor(h))
	if lo >= n-1 {
		return sorted[n-1]
	}
	if lo < 0 {
		return sorted[0]
	}
	return sorted[lo] + (h-float64(lo))*(sorted[lo+1]-sorted[lo])
}

// Summarize sorts values in place and describes them. An empty sample has Count 0 and null
// figures.
func Summarize(values []float64) Summary {
	s := Summary{Count: len(values)}
	if len(values) == 0 {
		return s
	}
	slices.Sort(values)
	var sum float64
	for _, v := range values {
		sum += v
	}
	s.Mean = Float(sum / float64(len(values)))
	s.Min = Float(values[0])
	s.Max = Float(values[len(values)-1])
	s.P50 = Float(Percentile(values, 0.50))
	s.P90 = Float(Percentile(values, 0.90))
	s.P95 = Float(Percentile(values, 0.95))
	s.P99 = Float(Percentile(values, 0.99))
	return s
}

// LatencySamples holds the latency samples of requests in milliseconds, and how many requests
// were timed by their tokens and how many by their streamed chunks.
type LatencySamples struct {
	TTFT, ITL, E2E []float64
	ByTokens       int
	ByChunks       int
}

// Add appends the samples of requests: TTFT = first token − start, ITL = differences of
// consecutive token times, E2E = last token − start. The start is the send (SendMonoNS) when the
// request has one (a constant or poisson load: the queueing in the engine counts), else when its
// batch started. A request without per-token times is timed by its streamed chunks instead
// (ChunkMonoNS: an ITL is then a gap between chunks). A request without either, or one that
// failed, adds nothing.
func (l *LatencySamples) Add(reqs []Request) {
	for i := range reqs {
		r := &reqs[i]
		if r.Failed() {
			continue
		}
		ts := r.TokenMonoNS
		if len(ts) == 0 {
			ts = r.ChunkMonoNS
			if len(ts) == 0 {
				continue
			}
			l.ByChunks++
		} else {
			l.ByTokens++
		}
		start := r.StartMonoNS
		if r.SendMonoNS != 0 {
			start = r.SendMonoNS
		}
		l.TTFT = append(l.TTFT, ms(ts[0]-start))
		l.E2E = append(l.E2E, ms(ts[len(ts)-1]-start))
		for k := 1; k < len(ts); k++ {
			l.ITL = append(l.ITL, ms(ts[k]-ts[k-1]))
		}
	}
}

// Summary sorts the samples and summarises them; TimedBy is set when chunks timed any request.
func (l *LatencySamples) Summary() Latency {
	out := Latency{TTFT: Summarize(l.TTFT), ITL: Summarize(l.ITL), E2E: Summarize(l.E2E)}
	switch {
	case l.ByChunks > 0 && l.ByTokens > 0:
		out.TimedBy = "tokens+chunks"
	case l.ByChunks > 0:
		out.TimedBy = "chunks"
	}
	return out
}

// LatencyOf summarises the latencies of requests.
func LatencyOf(reqs []Request) Latency {
	var l LatencySamples
	l.Add(reqs)
	return l.Summary()
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

// NewStats describes values over repeats: mean, sample standard deviation (n−1), the 95 %
// confidence interval of the mean with the Student t quantile for n−1 degrees of freedom, and the
// coefficient of variation std/|mean|.
func NewStats(values []float64) *Stats {
	st := &Stats{N: len(values), Values: append([]float64{}, values...)}
	n := len(values)
	if n == 0 {
		return st
	}
	var sum float64
	for _, v := range values {
		sum += v
	}
	mean := sum / float64(n)
	st.Mean = Float(mean)
	if n < 2 {
		return st
	}
	var ss float64
	for _, v := range values {
		ss += (v - mean) * (v - mean)
	}
	std := math.Sqrt(ss / float64(n-1))
	st.Std = Float(std)
	half := TQuantile(0.975, float64(n-1)) * std / math.Sqrt(float64(n))
	st.CI95Half = Float(half)
	st.CI95Low = Float(mean - half)
	st.CI95High = Float(mean + half)
	if mean != 0 {
		st.CV = Float(std / math.Abs(mean))
	}
	return st
}

// WithWithin adds the repeats' own standard uncertainties us (one per value) to st: WithinU is
// their root mean square; CombinedU = √(Std²/N + WithinU²), the standard uncertainty of the mean
// with both; the combined 95 % interval is mean ∓ √(CI95Half² + (2·WithinU)²). The within-window
// term is not divided by N: the repeats share the meter and its edges, so its errors are taken
// as correlated between repeats and do not average out. It returns st.
func (st *Stats) WithWithin(us []float64) *Stats {
	if st == nil || st.Mean == nil || len(us) != st.N || st.N == 0 {
		return st
	}
	w := 0.0
	for _, u := range us {
		w += u * u / float64(len(us))
	}
	w = math.Sqrt(w)
	between, half := 0.0, 0.0
	if st.Std != nil {
		between = *st.Std / math.Sqrt(float64(st.N))
		half = *st.CI95Half
	}
	st.WithinU = Float(w)
	st.CombinedU = Float(math.Hypot(between, w))
	h := math.Hypot(half, 2*w)
	st.Combined95Low, st.Combined95High = Float(*st.Mean-h), Float(*st.Mean+h)
	return st
}

// TQuantile returns the p-quantile of Student's t distribution with df > 0 degrees of freedom
// (0 < p < 1), by bisection on the distribution function. Accurate to about 1e-10.
func TQuantile(p, df float64) float64 {
	if p == 0.5 {
		return 0
	}
	if p < 0.5 {
		return -TQuantile(1-p, df)
	}
	lo, hi := 0.0, 1.0
	for TCDF(hi, df) < p {
		hi *= 2
		if hi > 1e12 {
			return math.Inf(1)
		}
	}
	for i := 0; i < 200 && hi-lo > 1e-12*math.Max(1, hi); i++ {
		mid := (lo + hi) / 2
		if TCDF(mid, df) < p {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// TCDF is the distribution function of Student's t with df degrees of freedom:
// for t ≥ 0, 1 − ½·I_{df/(df+t²)}(df/2, ½), with I the regularized incomplete beta function.
func TCDF(t, df float64) float64 {
	x := df / (df + t*t)
	tail := 0.5 * regIncBeta(df/2, 0.5, x)
	if t >= 0 {
		return 1 - tail
	}
	return tail
}

// regIncBeta is the regularized incomplete beta function I_x(a, b), evaluated with the continued
// fraction of Numerical Recipes (betacf, modified Lentz).
func regIncBeta(a, b, x float64) float64 {
	if x <= 0 {
		return 0
	}
	if x >= 1 {
		return 1
	}
	la, _ := math.Lgamma(a + b)
	lb, _ := math.Lgamma(a)
	lc, _ := math.Lgamma(b)
	front := math.Exp(la - lb - lc + a*math.Log(x) + b*math.Log(1-x))
	if x < (a+1)/(a+b+2) {
		return front * betaCF(a, b, x) / a
	}
	return 1 - front*betaCF(b, a, 1-x)/b
}

func betaCF(a, b, x float64) float64 {
	// Lentz's method: each step folds coefficient aa into the running c and d.
	const tiny = 1e-300
	nonzero := func(v float64) float64 {
		if math.Abs(v) < tiny {
			return tiny
		}
		return v
	}
	qab, qap, qam := a+b, a+1, a-1
	c, d := 1.0, 1/nonzero(1-qab*x/qap)
	h := d
	step := func(aa float64) float64 {
		d = 1 / nonzero(1+aa*d)
		c = nonzero(1 + aa/c)
		return d * c
	}
	for m := 1; m <= 300; m++ {
		fm := float64(m)
		m2 := 2 * fm
		h *= step(fm * (b - fm) * x / ((qam + m2) * (a + m2)))
		del := step(-(a + fm) * (qab + fm) * x / ((a + m2) * (qap + m2)))
		h *= del
		if math.Abs(del-1) < 1e-15 {
			break
		}
	}
	return h
}
