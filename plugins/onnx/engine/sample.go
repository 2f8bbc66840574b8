package engine

import (
	"math"
	"slices"
)

// rng is SplitMix64 (Steele, Lea & Flood 2014): a tiny, fast generator whose whole state is one
// word, so a request's stream is a pure function of the batch seed and its index — sampling
// reproduces exactly, whatever else runs in the process.
type rng struct{ s uint64 }

// newRNG returns the stream of the request at index in a batch seeded with seed.
func newRNG(seed uint64, index int) *rng {
	r := &rng{s: seed ^ (uint64(index)+1)*0x9e3779b97f4a7c15}
	r.next() // decorrelate neighbouring indices
	return r
}

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// float64 returns a uniform value in [0, 1) with 53 random bits.
func (r *rng) float64() float64 { return float64(r.next()>>11) / (1 << 53) }

// argmax returns the index of the largest logit (the lowest index among equals), as greedy
// decoding in transformers does; NaNs are never chosen, except that a NaN at index 0 is
// returned, as a plain scan from index 0 comparing with > would.
//
// It scans eight interleaved lanes, each keeping its own first maximum, and merges them: the
// comparisons of one lane do not wait on another's, so a row of GPT-2's 50,257 logits is read
// about twice as fast as by a single running maximum. At batch 8 the greedy step scans 8 rows
// per decode step, which a single lane made ~2 % of a gpt2-124m step (docs/performance.md).
func argmax(logits []float32) int32 {
	n := len(logits)
	if n == 0 || logits[0] != logits[0] {
		return 0
	}
	ninf := float32(math.Inf(-1))
	v0, v1, v2, v3, v4, v5, v6, v7 := ninf, ninf, ninf, ninf, ninf, ninf, ninf, ninf
	i0, i1, i2, i3, i4, i5, i6, i7 := -1, -1, -1, -1, -1, -1, -1, -1
	i := 0
	for ; i+8 <= n; i += 8 {
		p := logits[i : i+8 : i+8]
		if p[0] > v0 {
			v0, i0 = p[0], i
		}
		if p[1] > v1 {
			v1, i1 = p[1], i+1
		}
		if p[2] > v2 {
			v2, i2 = p[2], i+2
		}
		if p[3] > v3 {
			v3, i3 = p[3], i+3
		}
		if p[4] > v4 {
			v4, i4 = p[4], i+4
		}
		if p[5] > v5 {
			v5, i5 = p[5], i+5
		}
		if p[6] > v6 {
			v6, i6 = p[6], i+6
		}
		if p[7] > v7 {
			v7, i7 = p[7], i+7
		}
	}
	for ; i < n; i++ {
		if logits[i] > v0 {
			v0, i0 = logits[i], i
		}
	}
	// Merge: the largest value, the lowest index among equals; a lane that saw only NaN or
	// -Inf (index -1) loses to index 0, which a plain scan would return then.
	best, bv := 0, logits[0]
	vs := [8]float32{v0, v1, v2, v3, v4, v5, v6, v7}
	for k, j := range [8]int{i0, i1, i2, i3, i4, i5, i6, i7} {
		if j >= 0 && (vs[k] > bv || vs[k] == bv && j < best) {
			best, bv = j, vs[k]
		}
	}
	return int32(best)
}

// sampler draws a token from logits with temperature, top-k and top-p (nucleus) filtering.
// Its scratch buffers are reused across calls; one sampler serves one goroutine.
type sampler struct {
	temperature float64
	topK        int
	topP        float64
	probs       []float64
	cand        []int32
}

// sample draws from softmax(logits / temperature) restricted to the topK most likely tokens
// (0: all) and then to the smallest set of most likely tokens whose probability reaches topP
// (1: all). Ties are broken by the lower token id, so the result depends only on the logits
// and the random stream.
func (s *sampler) sample(logits []float32, r *rng) int32 {
	n := len(logits)
	if cap(s.probs) < n {
		s.probs = make([]float64, n)
		s.cand = make([]int32, 0, n)
	}
	p := s.probs[:n]
	mx := float64(logits[argmax(logits)])
	inv := 1 / s.temperature
	var total float64
	for i, x := range logits {
		v := math.Exp((float64(x) - mx) * inv)
		p[i] = v
		total += v
	}
	cand := s.cand[:0]
	k := s.topK
	if k <= 0 || k > n {
		k = n
	}
	if k == n && s.topP >= 1 {
		// No filter: walk the whole distribution.
		u := r.float64() * total
		for i, v := range p {
			u -= v
			if u < 0 {
				return int32(i)
			}
		}
		return int32(n - 1)
	}
	// Candidates: every token whose weight is at least t, lowering t until they hold the top k
	// tokens (with top-k) or a top-p share of the whole mass (without). A token left out weighs
	// less than every candidate, so the top-k set and the nucleus are prefixes of the sorted
	// candidates.
	for t := 1.0 / 16; ; t /= 16 {
		cand = cand[:0]
		var mass float64
		for i, v := range p {
			if v >= t {
				cand = append(cand, int32(i))
				mass += v
			}
		}
		if (k < n && len(cand) >= k) || (k == n && mass >= s.topP*total) || t < 1e-300 {
			break
		}
	}
	slices.SortFunc(cand, func(a, b int32) int {
		switch {
		case p[a] > p[b]:
			return -1
		case p[a] < p[b]:
			return 1
		}
		return int(a - b)
	})
	base := total
	if k < n {
		cand = cand[:min(k, len(cand))]
		base = 0
		for _, c := range cand {
			base += p[c]
		}
	}
	kept := base
	if s.topP < 1 {
		// The smallest prefix whose share of the (top-k) mass reaches top_p.
		var cum float64
		for j, c := range cand {
			cum += p[c]
			if cum >= s.topP*base {
				cand, kept = cand[:j+1], cum
				break
			}
		}
	}
	s.cand = cand
	u := r.float64() * kept
	for _, c := range cand {
		u -= p[c]
		if u < 0 {
			return c
		}
	}
	return cand[len(cand)-1]
}
