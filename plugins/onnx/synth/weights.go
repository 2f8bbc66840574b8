package synth

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"math"
)

// initKind says how a weight is initialised.
type initKind int

const (
	initUniform initKind = iota // uniform in [-a, a) with standard deviation std
	initOnes                    // all 1 (norm gains)
	initZeros                   // all 0 (norm biases)
)

// weight is one initialiser: its name, shape and initialisation.
type weight struct {
	name string
	dims []int64
	kind initKind
	std  float64
	// matrix marks a linear layer's weight [in, out]; quant, when set, stores it quantised.
	matrix bool
	quant  *quantShape
	// alias marks a second encoding of an earlier weight (the quantised copy of the tied GPT-2
	// head): the same values, not counted as parameters again.
	alias bool
}

func (w weight) elements() int64 {
	n := int64(1)
	for _, d := range w.dims {
		n *= d
	}
	return n
}

// Initialisation scales. Embeddings and biases use GPT-2's 0.02; matrices use
// matrixGain/sqrt(fan_in), far larger than GPT-2's 0.02, so the blocks (not the token's own
// embedding) dominate the residual stream and the network is in its chaotic regime: a gain of 1
// left gpt2-124m's residual stream dominated by directions every context shares (the mean of
// GELU's output through each projection), and greedy decoding repeated one token 32 times on
// the decode benchmark's prompt, and 2 still let a one-token prompt fall into a repeat; at 3 every preset's greedy output is varied (the engine's
// golden test asserts ≥ 8 distinct ids in 12 for gpt2-124m). The final norm keeps the logits'
// spread at about sqrt(d)·0.02 whatever the gain.
const (
	embedStd   = 0.02
	biasStd    = 0.02
	matrixGain = 3
)

func matrix(name string, in, out int) weight {
	return weight{name: name, dims: []int64{int64(in), int64(out)}, kind: initUniform, std: matrixGain / math.Sqrt(float64(in)), matrix: true}
}

func vector(name string, n int, kind initKind, std float64) weight {
	return weight{name: name, dims: []int64{int64(n)}, kind: kind, std: std}
}

// weights lists the preset's initialisers in file order, with HF-style names.
func (p Preset) weights() []weight {
	d, v := p.Hidden, p.Vocab
	var ws []weight
	switch p.Arch {
	case ArchGPT2:
		ws = append(ws,
			weight{name: "transformer.wte.weight", dims: []int64{int64(v), int64(d)}, kind: initUniform, std: embedStd},
			weight{name: "transformer.wpe.weight", dims: []int64{int64(p.Positions), int64(d)}, kind: initUniform, std: embedStd},
		)
		for i := 0; i < p.Layers; i++ {
			pre := fmt.Sprintf("transformer.h.%d.", i)
			ws = append(ws,
				vector(pre+"ln_1.weight", d, initOnes, 0),
				vector(pre+"ln_1.bias", d, initZeros, 0),
				matrix(pre+"attn.c_attn.weight", d, 3*d),
				vector(pre+"attn.c_attn.bias", 3*d, initUniform, biasStd),
				matrix(pre+"attn.c_proj.weight", d, d),
				vector(pre+"attn.c_proj.bias", d, initUniform, biasStd),
				vector(pre+"ln_2.weight", d, initOnes, 0),
				vector(pre+"ln_2.bias", d, initZeros, 0),
				matrix(pre+"mlp.c_fc.weight", d, p.Inner),
				vector(pre+"mlp.c_fc.bias", p.Inner, initUniform, biasStd),
				matrix(pre+"mlp.c_proj.weight", p.Inner, d),
				vector(pre+"mlp.c_proj.bias", d, initUniform, biasStd),
			)
		}
		ws = append(ws,
			vector("transformer.ln_f.weight", d, initOnes, 0),
			vector("transformer.ln_f.bias", d, initZeros, 0),
		)
	case ArchLlama:
		hd := p.HeadDim()
		ws = append(ws, weight{name: "model.embed_tokens.weight", dims: []int64{int64(v), int64(d)}, kind: initUniform, std: embedStd})
		for i := 0; i < p.Layers; i++ {
			pre := fmt.Sprintf("model.layers.%d.", i)
			ws = append(ws,
				vector(pre+"input_layernorm.weight", d, initOnes, 0),
				matrix(pre+"self_attn.q_proj.weight", d, p.Heads*hd),
				matrix(pre+"self_attn.k_proj.weight", d, p.KVHeads*hd),
				matrix(pre+"self_attn.v_proj.weight", d, p.KVHeads*hd),
				matrix(pre+"self_attn.o_proj.weight", p.Heads*hd, d),
				vector(pre+"post_attention_layernorm.weight", d, initOnes, 0),
				matrix(pre+"mlp.gate_proj.weight", d, p.Inner),
				matrix(pre+"mlp.up_proj.weight", d, p.Inner),
				matrix(pre+"mlp.down_proj.weight", p.Inner, d),
			)
		}
		ws = append(ws,
			vector("model.norm.weight", d, initOnes, 0),
			matrix("lm_head.weight", d, v),
		)
	}
	if p.Precision == FP32 || p.Precision == "" {
		return ws
	}
	for i, w := range ws {
		if w.matrix {
			ws[i].quant = &quantShape{K: int(w.dims[0]), N: int(w.dims[1])}
		}
	}
	if p.Arch == ArchGPT2 {
		// The tied head is the embedding transposed: MatMulNBits's B is [N, K] = [vocab, d], the
		// embedding's own layout, so the quantised copy is the embedding's values row by row.
		ws = append(ws, weight{name: "transformer.wte.weight", dims: []int64{int64(v), int64(d)}, kind: initUniform, std: embedStd,
			quant: &quantShape{K: d, N: v, nk: true}, alias: true})
	}
	return ws
}

// quantNames are the initialisers of a quantised weight: packed weights, scales, zero points.
func (w weight) quantNames(q Precision) (b, scales, zp string) {
	return fmt.Sprintf("%s_Q%d", w.name, q.Bits()), w.name + "_scales", w.name + "_zero_points"
}

// rng is PCG-XSH-RR (64-bit state, 32-bit output): small, fast and bit-for-bit reproducible on
// every platform. Each weight gets its own stream, derived from the seed and the weight's name,
// so a weight's values do not depend on the order weights are generated in.
type rng struct{ state, inc uint64 }

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func newRNG(seed uint64, name string) *rng {
	h := fnv.New64a()
	h.Write([]byte(name))
	s := splitmix64(seed ^ h.Sum64())
	r := &rng{inc: splitmix64(s)<<1 | 1}
	r.next()
	r.state += splitmix64(s + 1)
	r.next()
	return r
}

func (r *rng) next() uint32 {
	old := r.state
	r.state = old*6364136223846793005 + r.inc
	xorshifted := uint32(((old >> 18) ^ old) >> 27)
	rot := uint32(old >> 59)
	return xorshifted>>rot | xorshifted<<((-rot)&31)
}

// uniform returns a float32 in [-1, 1), exactly (24 random bits).
func (r *rng) uniform() float32 {
	k := int32(r.next() >> 8)             // [0, 2^24)
	return float32(k-(1<<23)) / (1 << 23) // exact in float32
}

// generate calls emit with each value of w generated from seed, in row-major order.
func generate(w weight, seed uint64, emit func(float32) error) error {
	n := w.elements()
	switch w.kind {
	case initOnes, initZeros:
		v := float32(0)
		if w.kind == initOnes {
			v = 1
		}
		for i := int64(0); i < n; i++ {
			if err := emit(v); err != nil {
				return err
			}
		}
		return nil
	}
	r := newRNG(seed, w.name)
	// A uniform distribution on [-a, a) has standard deviation a/sqrt(3).
	a := float32(w.std * math.Sqrt(3))
	for i := int64(0); i < n; i++ {
		if err := emit(a * r.uniform()); err != nil {
			return err
		}
	}
	return nil
}

// writeWeight streams the values of w, generated from seed, to out as little-endian float32,
// in chunks, never holding the whole tensor.
func writeWeight(out *bufio.Writer, w weight, seed uint64) error {
	chunk := make([]byte, 0, 1<<16)
	if err := generate(w, seed, func(v float32) error {
		chunk = binary.LittleEndian.AppendUint32(chunk, math.Float32bits(v))
		if len(chunk) == cap(chunk) {
			if _, err := out.Write(chunk); err != nil {
				return err
			}
			chunk = chunk[:0]
		}
		return nil
	}); err != nil {
		return err
	}
	_, err := out.Write(chunk)
	return err
}

// quantisedParts generates w (which must have quant set) and returns its packed weights,
// scales and zero points.
func quantisedParts(w weight, seed uint64, q Precision) [3][]byte {
	vals := make([]float32, 0, w.elements())
	generate(w, seed, func(v float32) error { vals = append(vals, v); return nil })
	b, s, z := quantise(vals, *w.quant, q)
	return [3][]byte{b, s, z}
}

// pad writes zero bytes to out until offset is a multiple of align.
func pad(out io.Writer, offset, align int64) (int64, error) {
	r := offset % align
	if r == 0 {
		return offset, nil
	}
	z := make([]byte, align-r)
	_, err := out.Write(z)
	return offset + align - r, err
}
