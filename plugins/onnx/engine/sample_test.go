package engine

import (
	"math"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/lemctl/lemctl/plugins/onnx/internal/testenv"
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

// scanArgmax is the plain definition argmax must equal: one running maximum from index 0.
func scanArgmax(logits []float32) int32 {
	best := 0
	for i, x := range logits {
		if x > logits[best] {
			best = i
		}
	}
	return int32(best)
}

func TestArgmaxEqualsAPlainScan(t *testing.T) {
	r := newRNG(7, 0)
	special := []float32{float32(math.NaN()), float32(math.Inf(-1)), float32(math.Inf(1)), 0, -0.0}
	for k := 0; k < 50000; k++ {
		// Short rows with few distinct values exercise ties, NaN and infinities in every lane
		// and in the tail; some rows are GPT-2's vocabulary long.
		n := 1 + int(r.next()%45)
		if k%500 == 0 {
			n = 50257
		}
		row := make([]float32, n)
		for i := range row {
			if u := r.next() % 10; u < 2 {
				row[i] = special[r.next()%uint64(len(special))]
			} else {
				row[i] = float32(r.next() % 5)
			}
			if n == 50257 {
				row[i] = float32(r.float64())
			}
		}
		if got, want := argmax(row), scanArgmax(row); got != want {
			t.Fatalf("argmax(%v) = %d, a plain scan gives %d", row, got, want)
		}
	}
}

// BenchmarkArgmax is one greedy choice over GPT-2's vocabulary: the lane scan and the plain one.
func BenchmarkArgmax(b *testing.B) {
	r := newRNG(1, 0)
	row := make([]float32, 50257)
	for i := range row {
		row[i] = float32(r.float64())
	}
	for _, c := range []struct {
		name string
		f    func([]float32) int32
	}{{"lanes", argmax}, {"scan", scanArgmax}} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				c.f(row)
			}
		})
	}
}

// BenchmarkStepTensors is the per-step cost of the tensor headers forward creates over the
// arena for gpt2-124m at batch 1 (ids, mask, positions, logits and 2×12 past and present
// tensors): NewTensor and Destroy of each, no data copied.
func BenchmarkStepTensors(b *testing.B) {
	testenv.ORT(b)
	const layers, heads, hd, vocab, total = 12, 12, 64, 50257, 40
	kv := make([]float32, heads*total*hd)
	logits := make([]float32, vocab)
	ids := make([]int64, total)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var vals []ort.Value
		add := func(v ort.Value, err error) {
			if err != nil {
				b.Fatal(err)
			}
			vals = append(vals, v)
		}
		add(ort.NewTensor(ort.NewShape(1, 1), ids))
		add(ort.NewTensor(ort.NewShape(1, total), ids))
		add(ort.NewTensor(ort.NewShape(1, 1), ids))
		add(ort.NewTensor(ort.NewShape(1, 1, vocab), logits))
		for j := 0; j < 2*layers; j++ {
			add(ort.NewTensor(ort.NewShape(1, heads, total-1, hd), kv))
			add(ort.NewTensor(ort.NewShape(1, heads, total, hd), kv))
		}
		for _, v := range vals {
			v.Destroy()
		}
	}
}
