package synth

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
)

// Precision is how a synthetic model stores its matrices.
type Precision string

// Precisions. FP32 stores every weight as float32; Int8 and Int4 quantise every matrix (the
// tied GPT-2 head included, as its own copy of the embedding) block-wise for ONNX Runtime's
// MatMulNBits contrib op, and keep embeddings (read by Gather), norms and biases in float32.
const (
	FP32 Precision = "fp32"
	Int8 Precision = "int8"
	Int4 Precision = "int4"
)

// Precisions lists the valid precisions.
func Precisions() []Precision { return []Precision{FP32, Int8, Int4} }

// ParsePrecision returns the precision named s ("" is FP32).
func ParsePrecision(s string) (Precision, bool) {
	switch Precision(s) {
	case "", FP32:
		return FP32, true
	case Int8, Int4:
		return Precision(s), true
	}
	return "", false
}

// Suffix is the preset-name suffix of the precision: "", "-q8" or "-q4".
func (q Precision) Suffix() string {
	switch q {
	case Int8:
		return "-q8"
	case Int4:
		return "-q4"
	}
	return ""
}

// Bits is the width of a quantised weight (32 for FP32).
func (q Precision) Bits() int {
	switch q {
	case Int8:
		return 8
	case Int4:
		return 4
	}
	return 32
}

// QuantBlock is the number of consecutive weights along K (the input dimension) that share a
// scale and a zero point.
const QuantBlock = 32

// QuantAccuracyLevel is MatMulNBits' accuracy_level: 4 lets ONNX Runtime's CPU kernels compute
// with int8 activations (quantised per block on the fly), as CPU weight-only exports made by its
// quantiser for int4/int8 ask for. At level 0 (float32 arithmetic) the 8-bit kernel is a slow
// path: the -q8 presets decoded at a twelfth of fp32's speed (docs/engine.md).
const QuantAccuracyLevel = 4

// QuantDomain is the operator domain of MatMulNBits.
const QuantDomain = "com.microsoft"

// Scheme describes the quantisation for reports.
func (q Precision) Scheme() string {
	if q == FP32 {
		return "none"
	}
	return fmt.Sprintf("MatMulNBits %d-bit, block %d, asymmetric (float32 scale and uint8 zero point per block), accuracy_level %d (int8 activations)", q.Bits(), QuantBlock, QuantAccuracyLevel)
}

// splitPrecision splits a preset name with a precision suffix.
func splitPrecision(name string) (string, Precision) {
	for _, q := range []Precision{Int8, Int4} {
		if base, ok := strings.CutSuffix(name, q.Suffix()); ok {
			return base, q
		}
	}
	return name, FP32
}

// quantShape is the layout of a quantised matrix: the weight is W[K, N] (y = x·W), K the input
// dimension; nk says the float values are generated row-major as [N, K] (the tied GPT-2 head,
// whose embedding is [vocab, d]) instead of [K, N].
type quantShape struct {
	K, N int
	nk   bool
}

func (s quantShape) blocks() int { return (s.K + QuantBlock - 1) / QuantBlock }

// lengths returns the byte lengths of the packed weights, the scales and the zero points.
func (s quantShape) lengths(q Precision) (b, scales, zp int64) {
	nb := int64(s.blocks())
	n := int64(s.N)
	b = n * nb * int64(QuantBlock*q.Bits()/8)
	scales = n * nb * 4
	if q == Int4 {
		zp = n * ((nb + 1) / 2)
	} else {
		zp = n * nb
	}
	return b, scales, zp
}

// quantise quantises vals (K·N float32, in the layout s says) block-wise along K per output
// column n: per block, lo = min(0, min v), hi = max(0, max v), scale = (hi − lo)/(2^bits − 1),
// zero point = round(−lo/scale), q = clamp(round(v/scale) + zero point); ONNX Runtime
// dequantises q as (q − zero point)·scale. B is [N, blocks, block·bits/8] with two 4-bit values
// per byte, the lower K index in the low nibble; 4-bit zero points are packed the same way per
// column. Positions past K (a last partial block) hold the zero point.
func quantise(vals []float32, s quantShape, q Precision) (b, scales, zp []byte) {
	lb, ls, lz := s.lengths(q)
	b, scales, zp = make([]byte, lb), make([]byte, ls), make([]byte, lz)
	levels := float32(int(1)<<q.Bits() - 1)
	nb := s.blocks()
	blob := QuantBlock * q.Bits() / 8
	zpRow := int(lz) / s.N
	at := func(n, k int) float32 {
		if s.nk {
			return vals[n*s.K+k]
		}
		return vals[k*s.N+n]
	}
	var block [QuantBlock]float32
	for n := 0; n < s.N; n++ {
		for j := 0; j < nb; j++ {
			k0 := j * QuantBlock
			m := min(QuantBlock, s.K-k0)
			lo, hi := float32(0), float32(0)
			for i := 0; i < m; i++ {
				v := at(n, k0+i)
				block[i] = v
				lo, hi = min(lo, v), max(hi, v)
			}
			scale := (hi - lo) / levels
			if scale == 0 {
				scale = 1
			}
			z := min(max(float32(math.Round(float64(-lo/scale))), 0), levels)
			binary.LittleEndian.PutUint32(scales[4*(n*nb+j):], math.Float32bits(scale))
			off := (n*nb + j) * blob
			for i := 0; i < QuantBlock; i++ {
				qv := z
				if i < m {
					qv = min(max(float32(math.Round(float64(block[i]/scale)))+z, 0), levels)
				}
				if q == Int4 {
					b[off+i/2] |= byte(qv) << (4 * (i % 2))
				} else {
					b[off+i] = byte(qv)
				}
			}
			if q == Int4 {
				zp[n*zpRow+j/2] |= byte(z) << (4 * (j % 2))
			} else {
				zp[n*nb+j] = byte(z)
			}
		}
	}
	return b, scales, zp
}

// Dequantise returns the float32 weight W[K, N] (row-major) that ONNX Runtime computes with
// from quantise's output: for tests.
func Dequantise(b, scales, zp []byte, K, N int, q Precision) []float32 {
	s := quantShape{K: K, N: N}
	nb := s.blocks()
	blob := QuantBlock * q.Bits() / 8
	_, _, lz := s.lengths(q)
	zpRow := int(lz) / N
	w := make([]float32, K*N)
	for n := 0; n < N; n++ {
		for k := 0; k < K; k++ {
			j, i := k/QuantBlock, k%QuantBlock
			scale := math.Float32frombits(binary.LittleEndian.Uint32(scales[4*(n*nb+j):]))
			var qv, z byte
			if q == Int4 {
				qv = b[(n*nb+j)*blob+i/2] >> (4 * (i % 2)) & 0xf
				z = zp[n*zpRow+j/2] >> (4 * (j % 2)) & 0xf
			} else {
				qv = b[(n*nb+j)*blob+i]
				z = zp[n*nb+j]
			}
			w[k*N+n] = (float32(qv) - float32(z)) * scale
		}
	}
	return w
}

// Quantise is quantise for tests: vals is W[K, N] row-major.
func Quantise(vals []float32, K, N int, q Precision) (b, scales, zp []byte) {
	return quantise(vals, quantShape{K: K, N: N}, q)
}
