package engine

import (
	"math"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/plugins/onnx/internal/testenv"
	"github.com/lemctl/lemctl/sdk"
)

// ortExport writes into a new directory synthetic:gpt2-tiny (float32) quantised the way ONNX
// Runtime's weight-only quantiser does (testdata/ort_quantise.py, run with Debian's onnx
// package: the file is serialised by onnx, not by lemctl), laid out like an optimum export
// (model.onnx, config.json without lemctl's synthetic block, the tokenizer files), and
// returns the directory.
func ortExport(t *testing.T, format string, bits, block, accuracy int) string {
	t.Helper()
	py := testenv.Python(t)
	src := resolve(t, "synthetic:gpt2-tiny", "").Metadata["model_dir"]
	dst := filepath.Join(t.TempDir(), "gpt2-tiny-"+format)
	out, err := exec.Command(py, filepath.Join("testdata", "ort_quantise.py"), src, dst, format,
		strconv.Itoa(bits), strconv.Itoa(block), strconv.Itoa(accuracy)).CombinedOutput()
	if err != nil {
		t.Fatalf("ort_quantise.py: %v\n%s", err, out)
	}
	return dst
}

// TestORTQuantisedExportsLoad: models in the layouts ONNX Runtime's weight-only quantiser
// writes — MatMulNBits (4-bit with its default block of 128; 4-bit block 32 with
// accuracy_level 4, as CPU int4 builds ask for; 8-bit) and QDQ (uint4 DequantizeLinear, block
// 32, opset 21) — load as ordinary model directories, report their precision and scheme, and
// generate greedy ids equal to onnxruntime-node's on the same file. The QDQ model and the
// MatMulNBits one with the same block and accuracy_level 4 hold the same quantised matrices in
// two layouts, so their prefill logits must agree: ONNX Runtime fuses DequantizeLinear +
// MatMul into MatMulNBits at the accuracy level its session option defaults to (4). A packing
// mistake in either layout breaks that agreement (block 128 without accuracy_level differs by
// ~1 % of the largest logit: float32 against int8 activations).
func TestORTQuantisedExportsLoad(t *testing.T) {
	const steps = 8
	cases := []struct {
		name                  string
		format                string
		bits, block, accuracy int
		precision, scheme     string
	}{
		{"matmulnbits-int4", "qoperator", 4, 128, 0, "int4", "MatMulNBits 4-bit, block 128, asymmetric"},
		{"matmulnbits-int4-acc4", "qoperator", 4, 32, 4, "int4", "MatMulNBits 4-bit, block 32, asymmetric"},
		{"matmulnbits-int8", "qoperator", 8, 128, 0, "int8", "MatMulNBits 8-bit, block 128, asymmetric"},
		{"qdq-int4", "qdq", 4, 32, 0, "int4", "QDQ int4 (DequantizeLinear), block 32"},
	}
	fp := resolve(t, "synthetic:gpt2-tiny", "")
	fpBytes, _ := strconv.ParseInt(fp.Metadata["bytes_per_token"], 10, 64)
	prefill := map[string][][]float32{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := ortExport(t, c.format, c.bits, c.block, c.accuracy)
			a := resolve(t, dir, "")
			md := a.Metadata
			if a.Synthetic || !strings.HasPrefix(md["producer"], "pytorch") {
				t.Errorf("synthetic %v, producer %q: want a plain export from pytorch", a.Synthetic, md["producer"])
			}
			if md["precision"] != c.precision || md["quant_scheme"] != c.scheme {
				t.Errorf("precision %q, scheme %q; want %q, %q", md["precision"], md["quant_scheme"], c.precision, c.scheme)
			}
			// The quantiser leaves the tied head (a Gemm over the embedding) in float32, so
			// a step reads the float32 head and quantised blocks.
			bpt, _ := strconv.ParseInt(md["bytes_per_token"], 10, 64)
			if bpt <= 0 || bpt >= fpBytes {
				t.Errorf("bytes_per_token %d, want in (0, %d) (float32's)", bpt, fpBytes)
			}
			e := load(t, a, Settings{})
			var logits [][]float32
			e.onStep = func(step int, lg [][]float32) {
				if step == 0 {
					logits = append(logits, lg[0])
				}
			}
			want := testenv.NodeGreedy(t, dir, prompts, steps)
			for i, p := range prompts {
				got, _, _ := collect(t, e, sdk.GenerateRequest{Prompts: idPrompts(p), Decoding: greedy(steps)})
				if !slices.Equal(got[0].OutputIDs, want[i]) {
					t.Errorf("prompt %d: engine greedy ids %v, onnxruntime-node %v", i, got[0].OutputIDs, want[i])
				}
			}
			t.Logf("%s: precision %s, scheme %q, %d weight bytes, %d bytes per token (float32 %d); greedy ids equal onnxruntime-node's",
				c.name, md["precision"], md["quant_scheme"], mustInt(md["weight_bytes"]), bpt, fpBytes)
			prefill[c.name] = logits
		})
	}
	a, b := prefill["matmulnbits-int4-acc4"], prefill["qdq-int4"]
	if len(a) != len(prompts) || len(b) != len(prompts) {
		return // a subtest failed or was skipped
	}
	for i := range a {
		scale, worst := 0.0, 0.0
		for k := range a[i] {
			scale = max(scale, math.Abs(float64(a[i][k])))
			worst = max(worst, math.Abs(float64(a[i][k]-b[i][k])))
		}
		if worst > 1e-4*scale {
			t.Errorf("prompt %d: MatMulNBits and QDQ prefill logits differ by %g (largest logit %g)", i, worst, scale)
		}
	}
}

func mustInt(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}
