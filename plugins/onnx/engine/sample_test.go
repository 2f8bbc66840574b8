package engine

import (
	"math"
	"testing"
)

func TestSampler(t *testing.T) {
	// Weights 1:2:3:4 (temperature 1) over four tokens, plus eight very unlikely ones.
	logits := make([]float32, 12)
	for i := range logits {
		logits[i] = -40
	}
	for i := 0; i < 4; i++ {
		logits[i] = float32(math.Log(float64(i + 1)))
	}
	const draws = 40000
	cases := []struct {
		name string
		s    sampler
		want []float64 // expected share of tokens 0..3; the rest must never appear
	}{
		{"softmax", sampler{temperature: 1, topP: 1}, []float64{0.1, 0.2, 0.3, 0.4}},
		{"top-k 2", sampler{temperature: 1, topK: 2, topP: 1}, []float64{0, 0, 3.0 / 7, 4.0 / 7}},
		{"top-k 1 is greedy", sampler{temperature: 1, topK: 1, topP: 1}, []float64{0, 0, 0, 1}},
		{"top-p 0.65 keeps 4 and 3", sampler{temperature: 1, topP: 0.65}, []float64{0, 0, 3.0 / 7, 4.0 / 7}},
		{"top-p 0.7 keeps exactly 4 and 3", sampler{temperature: 1, topP: 0.7}, []float64{0, 0, 3.0 / 7, 4.0 / 7}},
		{"top-p tiny is greedy", sampler{temperature: 1, topP: 1e-6}, []float64{0, 0, 0, 1}},
		{"top-k 3 then top-p 0.5 of its mass", sampler{temperature: 1, topK: 3, topP: 0.5}, []float64{0, 0, 3.0 / 7, 4.0 / 7}},
		{"temperature 0.5 squares the weights", sampler{temperature: 0.5, topP: 1}, []float64{1.0 / 30, 4.0 / 30, 9.0 / 30, 16.0 / 30}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRNG(42, 0)
			counts := make([]int, len(logits))
			for i := 0; i < draws; i++ {
				counts[c.s.sample(logits, r)]++
			}
			for tok, n := range counts {
				share := float64(n) / draws
				want := 0.0
				if tok < len(c.want) {
					want = c.want[tok]
				}
				if math.Abs(share-want) > 0.01 || (want == 0 && n > 0) {
					t.Errorf("token %d drawn %.4f of the time, want %.4f", tok, share, want)
				}
			}
		})
	}
}

func TestRNGStreams(t *testing.T) {
	a, b, c := newRNG(1, 0), newRNG(1, 0), newRNG(1, 1)
	same, diff := true, 0
	for i := 0; i < 100; i++ {
		x, y, z := a.next(), b.next(), c.next()
		same = same && x == y
		if x != z {
			diff++
		}
	}
	if !same || diff < 99 {
		t.Errorf("same seed and index reproduce: %v; different index differs %d/100", same, diff)
	}
	if got := argmax([]float32{1, 3, 3, 2}); got != 1 {
		t.Errorf("argmax ties: %d, want the lowest index 1", got)
	}
}
