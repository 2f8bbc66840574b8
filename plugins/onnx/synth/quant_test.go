package synth_test

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/lemctl/lemctl/plugins/onnx/internal/onnxpb"
	"github.com/lemctl/lemctl/plugins/onnx/internal/testenv"
	"github.com/lemctl/lemctl/plugins/onnx/synth"
)

// TestMatMulNBitsEqualsDequantisedMatMul: ONNX Runtime's MatMulNBits over quantise's packed
// weights, scales and zero points computes A·W' where W' is Dequantise's matrix, and W' is
// within half a quantisation step of W. K = 80 has a partial last block.
func TestMatMulNBitsEqualsDequantisedMatMul(t *testing.T) {
	testenv.ORT(t)
	const M, K, N = 3, 80, 24
	r := rand.New(rand.NewPCG(1, 2))
	w := make([]float32, K*N)
	for i := range w {
		w[i] = float32(r.NormFloat64())
	}
	a := make([]float32, M*K)
	for i := range a {
		a[i] = float32(r.NormFloat64())
	}
	for _, q := range []synth.Precision{synth.Int8, synth.Int4} {
		t.Run(string(q), func(t *testing.T) {
			b, scales, zp := synth.Quantise(w, K, N, q)
			deq := synth.Dequantise(b, scales, zp, K, N, q)
			steps := float64(int(1)<<q.Bits() - 1)
			for i := range w {
				// |w| ≤ ~4.5 here, so a block's range is at most ~9: step ≤ 9/steps.
				if d := math.Abs(float64(w[i] - deq[i])); d > 0.5*10/steps {
					t.Fatalf("element %d: %g dequantises to %g", i, w[i], deq[i])
				}
			}
			nb := (K + synth.QuantBlock - 1) / synth.QuantBlock
			g := &onnxpb.Graph{
				Name: "nbits",
				Nodes: []*onnxpb.Node{{Name: "mm", OpType: "MatMulNBits", Domain: synth.QuantDomain,
					Inputs: []string{"A", "B", "scales", "zp"}, Outputs: []string{"Y"},
					Attrs: []onnxpb.Attr{
						{Name: "K", Type: onnxpb.AttrInt, I: K}, {Name: "N", Type: onnxpb.AttrInt, I: N},
						{Name: "bits", Type: onnxpb.AttrInt, I: int64(q.Bits())}, {Name: "block_size", Type: onnxpb.AttrInt, I: synth.QuantBlock},
					}}},
				Initializers: []*onnxpb.Tensor{
					{Name: "B", DataType: onnxpb.Uint8, Dims: []int64{N, int64(nb), int64(synth.QuantBlock * q.Bits() / 8)}, RawData: b},
					{Name: "scales", DataType: onnxpb.Float, Dims: []int64{int64(N * nb)}, RawData: scales},
					{Name: "zp", DataType: onnxpb.Uint8, Dims: []int64{int64(len(zp))}, RawData: zp},
				},
				Inputs:  []onnxpb.ValueInfo{{Name: "A", ElemType: onnxpb.Float, HasShape: true, Shape: []onnxpb.Dim{{Value: M}, {Value: K}}}},
				Outputs: []onnxpb.ValueInfo{{Name: "Y", ElemType: onnxpb.Float, HasShape: true, Shape: []onnxpb.Dim{{Value: M}, {Value: N}}}},
			}
			m := &onnxpb.Model{IRVersion: 8, Graph: g,
				Opsets: []onnxpb.OpsetID{{Domain: "", Version: synth.Opset}, {Domain: synth.QuantDomain, Version: 1}}}
			path := filepath.Join(t.TempDir(), "nbits.onnx")
			if err := os.WriteFile(path, m.Marshal(), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := ort.NewDynamicAdvancedSession(path, []string{"A"}, []string{"Y"}, nil)
			if err != nil {
				t.Fatalf("load MatMulNBits model: %v", err)
			}
			defer s.Destroy()
			in, _ := ort.NewTensor(ort.NewShape(M, K), a)
			defer in.Destroy()
			out := []ort.Value{nil}
			if err := s.Run([]ort.Value{in}, out); err != nil {
				t.Fatal(err)
			}
			defer out[0].Destroy()
			got := out[0].(*ort.Tensor[float32]).GetData()
			for i := 0; i < M; i++ {
				for n := 0; n < N; n++ {
					var want float64
					for k := 0; k < K; k++ {
						want += float64(a[i*K+k]) * float64(deq[k*N+n])
					}
					if d := math.Abs(float64(got[i*N+n]) - want); d > 1e-3*(1+math.Abs(want)) {
						t.Errorf("Y[%d,%d] = %g, dequantised MatMul %g", i, n, got[i*N+n], want)
					}
				}
			}
		})
	}
}
