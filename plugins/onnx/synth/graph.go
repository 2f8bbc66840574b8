package synth

import (
	"fmt"
	"math"

	"github.com/lemctl/lemctl/plugins/onnx/internal/onnxpb"
	"github.com/lemctl/lemctl/plugins/onnx/model"
)

// Symbolic dimension names, as an optimum export writes them.
const (
	dimBatch = "batch_size"
	dimSeq   = "sequence_length"
	dimPast  = "past_sequence_length"
	dimTotal = "total_sequence_length"
)

// builder accumulates nodes with unique output names.
type builder struct {
	nodes []*onnxpb.Node
	n     int
}

func (b *builder) op(opType string, inputs []string, attrs ...onnxpb.Attr) string {
	return b.opN(opType, inputs, 1, attrs...)[0]
}

func (b *builder) opN(opType string, inputs []string, outputs int, attrs ...onnxpb.Attr) []string {
	b.n++
	name := fmt.Sprintf("/%s_%d", opType, b.n)
	outs := make([]string, outputs)
	for i := range outs {
		outs[i] = fmt.Sprintf("%s/output_%d", name, i)
	}
	b.nodes = append(b.nodes, &onnxpb.Node{Name: name, OpType: opType, Inputs: inputs, Outputs: outs, Attrs: attrs})
	return outs
}

// named adds a node whose single output has a fixed name (a graph output).
func (b *builder) named(out, opType string, inputs []string, attrs ...onnxpb.Attr) string {
	b.n++
	b.nodes = append(b.nodes, &onnxpb.Node{Name: fmt.Sprintf("/%s_%d", opType, b.n), OpType: opType, Inputs: inputs, Outputs: []string{out}, Attrs: attrs})
	return out
}

// Constants are Constant nodes, not initialisers, so only weights are initialisers and the
// parameter count from the initialisers is exact.
func (b *builder) ints(vs ...int64) string {
	return b.op("Constant", nil, onnxpb.Attr{Name: "value", Type: onnxpb.AttrTensor,
		T: &onnxpb.Tensor{Dims: []int64{int64(len(vs))}, DataType: onnxpb.Int64, Int64Data: vs}})
}

func (b *builder) scalarInt(v int64) string {
	return b.op("Constant", nil, onnxpb.Attr{Name: "value", Type: onnxpb.AttrTensor,
		T: &onnxpb.Tensor{DataType: onnxpb.Int64, Int64Data: []int64{v}}})
}

func (b *builder) scalarFloat(v float32) string {
	return b.op("Constant", nil, onnxpb.Attr{Name: "value", Type: onnxpb.AttrTensor,
		T: &onnxpb.Tensor{DataType: onnxpb.Float, FloatData: []float32{v}}})
}

func (b *builder) floats(vs ...float32) string {
	return b.op("Constant", nil, onnxpb.Attr{Name: "value", Type: onnxpb.AttrTensor,
		T: &onnxpb.Tensor{Dims: []int64{int64(len(vs))}, DataType: onnxpb.Float, FloatData: vs}})
}

func attrInt(name string, v int64) onnxpb.Attr {
	return onnxpb.Attr{Name: name, Type: onnxpb.AttrInt, I: v}
}

func attrInts(name string, vs ...int64) onnxpb.Attr {
	return onnxpb.Attr{Name: name, Type: onnxpb.AttrInts, Ints: vs}
}

func attrFloat(name string, v float32) onnxpb.Attr {
	return onnxpb.Attr{Name: name, Type: onnxpb.AttrFloat, F: v}
}

func tensorInfo(name string, elem int32, dims ...onnxpb.Dim) onnxpb.ValueInfo {
	return onnxpb.ValueInfo{Name: name, ElemType: elem, Shape: dims, HasShape: true}
}

func sym(s string) onnxpb.Dim { return onnxpb.Dim{Param: s} }
func fixed(v int) onnxpb.Dim  { return onnxpb.Dim{Value: int64(v)} }

// graph builds the preset's decoder graph. Weights are referenced by their names in
// p.weights(); the caller attaches them as initialisers.
func (p Preset) graph() *onnxpb.Graph {
	b := &builder{}
	hd := p.HeadDim()
	kvDims := []onnxpb.Dim{sym(dimBatch), fixed(p.KVHeads), sym(dimPast), fixed(hd)}
	presentDims := []onnxpb.Dim{sym(dimBatch), fixed(p.KVHeads), sym(dimTotal), fixed(hd)}
	g := &onnxpb.Graph{Name: "lemctl_synthetic_" + p.Name}
	g.Inputs = []onnxpb.ValueInfo{
		tensorInfo(model.InputIDs, onnxpb.Int64, sym(dimBatch), sym(dimSeq)),
		tensorInfo(model.AttentionMask, onnxpb.Int64, sym(dimBatch), sym(dimTotal)),
		tensorInfo(model.PositionIDs, onnxpb.Int64, sym(dimBatch), sym(dimSeq)),
	}
	for i := 0; i < p.Layers; i++ {
		g.Inputs = append(g.Inputs,
			tensorInfo(model.PastKey(i), onnxpb.Float, kvDims...),
			tensorInfo(model.PastValue(i), onnxpb.Float, kvDims...))
	}
	g.Outputs = []onnxpb.ValueInfo{tensorInfo(model.Logits, onnxpb.Float, sym(dimBatch), sym(dimSeq), fixed(p.Vocab))}
	for i := 0; i < p.Layers; i++ {
		g.Outputs = append(g.Outputs,
			tensorInfo(model.PresentKey(i), onnxpb.Float, presentDims...),
			tensorInfo(model.PresentValue(i), onnxpb.Float, presentDims...))
	}

	// The mask, shared by every layer: query i of this call sits at cache index past+i and may
	// see key j when j ≤ past+i (causal) and attention_mask[b, j] = 1 (not padding).
	zero, one := b.scalarInt(0), b.scalarInt(1)
	total := b.op("Gather", []string{b.op("Shape", []string{model.AttentionMask}), one}, attrInt("axis", 0))
	seq := b.op("Gather", []string{b.op("Shape", []string{model.InputIDs}), one}, attrInt("axis", 0))
	past := b.op("Sub", []string{total, seq})
	keyIdx := b.op("Range", []string{zero, total, one})   // [T]
	queryIdx := b.op("Range", []string{past, total, one}) // [S]
	causal := b.op("LessOrEqual", []string{
		b.op("Unsqueeze", []string{keyIdx, b.ints(0)}),   // [1, T]
		b.op("Unsqueeze", []string{queryIdx, b.ints(1)}), // [S, 1]
	}) // [S, T]
	padding := b.op("Unsqueeze", []string{b.op("Cast", []string{model.AttentionMask}, attrInt("to", int64(onnxpb.Bool))), b.ints(1, 2)}) // [B,1,1,T]
	allowed := b.op("And", []string{causal, padding})                                                                                    // [B,1,S,T]
	group := p.Heads / p.KVHeads
	if group > 1 {
		// Queries of one KV group are laid out as [B, KV, G·S, D]: repeat the mask G times.
		allowed = b.op("Tile", []string{allowed, b.ints(1, 1, int64(group), 1)})
	}
	masked := b.scalarFloat(-math.MaxFloat32)

	// Embeddings.
	var x string
	var cos, sin string
	switch p.Arch {
	case ArchGPT2:
		x = b.op("Add", []string{
			b.op("Gather", []string{"transformer.wte.weight", model.InputIDs}, attrInt("axis", 0)),
			b.op("Gather", []string{"transformer.wpe.weight", model.PositionIDs}, attrInt("axis", 0)),
		})
	case ArchLlama:
		x = b.op("Gather", []string{"model.embed_tokens.weight", model.InputIDs}, attrInt("axis", 0))
		// Rotary tables from position_ids: angle[b,s,j] = pos[b,s] · theta^(-2j/D).
		inv := make([]float32, hd/2)
		for j := range inv {
			inv[j] = float32(1 / math.Pow(p.RopeTheta, float64(2*j)/float64(hd)))
		}
		pos := b.op("Unsqueeze", []string{b.op("Cast", []string{model.PositionIDs}, attrInt("to", int64(onnxpb.Float))), b.ints(2)}) // [B,S,1]
		freqs := b.op("Mul", []string{pos, b.floats(inv...)})                                                                        // [B,S,D/2]
		emb := b.op("Concat", []string{freqs, freqs}, attrInt("axis", -1))                                                           // [B,S,D]
		cos = b.op("Unsqueeze", []string{b.op("Cos", []string{emb}), b.ints(1)})                                                     // [B,1,S,D]
		sin = b.op("Unsqueeze", []string{b.op("Sin", []string{emb}), b.ints(1)})
	}

	heads := func(t string, n int) string { // [B,S,n·D] → [B,n,S,D]
		return b.op("Transpose", []string{b.op("Reshape", []string{t, b.ints(0, 0, int64(n), int64(hd))})}, attrInts("perm", 0, 2, 1, 3))
	}
	rope := func(t string) string { // t·cos + rotate_half(t)·sin
		halves := b.opN("Split", []string{t, b.ints(int64(hd/2), int64(hd/2))}, 2, attrInt("axis", -1))
		rot := b.op("Concat", []string{b.op("Neg", []string{halves[1]}), halves[0]}, attrInt("axis", -1))
		return b.op("Add", []string{b.op("Mul", []string{t, cos}), b.op("Mul", []string{rot, sin})})
	}
	scale := b.scalarFloat(float32(1 / math.Sqrt(float64(hd))))
	attention := func(i int, q, k, v string) string { // q [B,H,S,D], k, v [B,KV,S,D] → [B,S,H·D]
		presentK := b.named(model.PresentKey(i), "Concat", []string{model.PastKey(i), k}, attrInt("axis", 2))
		presentV := b.named(model.PresentValue(i), "Concat", []string{model.PastValue(i), v}, attrInt("axis", 2))
		q = b.op("Mul", []string{q, scale})
		if group > 1 {
			q = b.op("Reshape", []string{q, b.ints(0, int64(p.KVHeads), -1, int64(hd))}) // [B,KV,G·S,D]
		}
		scores := b.op("MatMul", []string{q, b.op("Transpose", []string{presentK}, attrInts("perm", 0, 1, 3, 2))})
		scores = b.op("Where", []string{allowed, scores, masked})
		probs := b.op("Softmax", []string{scores}, attrInt("axis", -1))
		o := b.op("MatMul", []string{probs, presentV})
		if group > 1 {
			o = b.op("Reshape", []string{o, b.ints(0, int64(p.Heads), -1, int64(hd))})
		}
		o = b.op("Transpose", []string{o}, attrInts("perm", 0, 2, 1, 3))
		return b.op("Reshape", []string{o, b.ints(0, 0, int64(p.Heads*hd))})
	}
	quant := map[string]weight{}
	for _, w := range p.weights() {
		if w.quant != nil {
			quant[w.name] = w
		}
	}
	// matmul is t·w: MatMul, or MatMulNBits over w's quantised initialisers (out names the
	// output when it is a graph output).
	matmul := func(out, t, w string) string {
		qw, ok := quant[w]
		if !ok {
			if out != "" {
				return b.named(out, "MatMul", []string{t, w})
			}
			return b.op("MatMul", []string{t, w})
		}
		bn, sn, zn := qw.quantNames(p.Precision)
		in := []string{t, bn, sn, zn}
		attrs := []onnxpb.Attr{attrInt("K", int64(qw.quant.K)), attrInt("N", int64(qw.quant.N)),
			attrInt("bits", int64(p.Precision.Bits())), attrInt("block_size", QuantBlock), attrInt("accuracy_level", QuantAccuracyLevel)}
		if out == "" {
			out = b.op("MatMulNBits", in, attrs...)
		} else {
			b.named(out, "MatMulNBits", in, attrs...)
		}
		b.nodes[len(b.nodes)-1].Domain = QuantDomain
		return out
	}
	linear := func(t, w, bias string) string {
		y := matmul("", t, w)
		if bias != "" {
			y = b.op("Add", []string{y, bias})
		}
		return y
	}
	layerNorm := func(t, pre string) string {
		return b.op("LayerNormalization", []string{t, pre + ".weight", pre + ".bias"},
			attrInt("axis", -1), attrFloat("epsilon", float32(p.NormEps)))
	}
	rmsNorm := func(t, w string) string {
		ms := b.op("ReduceMean", []string{b.op("Mul", []string{t, t})}, attrInts("axes", -1), attrInt("keepdims", 1))
		r := b.op("Sqrt", []string{b.op("Add", []string{ms, b.scalarFloat(float32(p.NormEps))})})
		return b.op("Mul", []string{b.op("Div", []string{t, r}), w})
	}
	gelu := func(t string) string { // GPT-2's gelu_new: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
		x3 := b.op("Mul", []string{b.op("Mul", []string{t, t}), t})
		inner := b.op("Mul", []string{b.op("Add", []string{t, b.op("Mul", []string{x3, b.scalarFloat(0.044715)})}), b.scalarFloat(float32(math.Sqrt(2 / math.Pi)))})
		return b.op("Mul", []string{b.op("Mul", []string{t, b.scalarFloat(0.5)}), b.op("Add", []string{b.op("Tanh", []string{inner}), b.scalarFloat(1)})})
	}

	d := int64(p.Hidden)
	for i := 0; i < p.Layers; i++ {
		switch p.Arch {
		case ArchGPT2:
			pre := fmt.Sprintf("transformer.h.%d.", i)
			h := layerNorm(x, pre+"ln_1")
			qkv := linear(h, pre+"attn.c_attn.weight", pre+"attn.c_attn.bias")
			parts := b.opN("Split", []string{qkv, b.ints(d, d, d)}, 3, attrInt("axis", -1))
			a := attention(i, heads(parts[0], p.Heads), heads(parts[1], p.KVHeads), heads(parts[2], p.KVHeads))
			x = b.op("Add", []string{x, linear(a, pre+"attn.c_proj.weight", pre+"attn.c_proj.bias")})
			h = layerNorm(x, pre+"ln_2")
			m := linear(gelu(linear(h, pre+"mlp.c_fc.weight", pre+"mlp.c_fc.bias")), pre+"mlp.c_proj.weight", pre+"mlp.c_proj.bias")
			x = b.op("Add", []string{x, m})
		case ArchLlama:
			pre := fmt.Sprintf("model.layers.%d.", i)
			h := rmsNorm(x, pre+"input_layernorm.weight")
			q := rope(heads(linear(h, pre+"self_attn.q_proj.weight", ""), p.Heads))
			k := rope(heads(linear(h, pre+"self_attn.k_proj.weight", ""), p.KVHeads))
			v := heads(linear(h, pre+"self_attn.v_proj.weight", ""), p.KVHeads)
			a := attention(i, q, k, v)
			x = b.op("Add", []string{x, linear(a, pre+"self_attn.o_proj.weight", "")})
			h = rmsNorm(x, pre+"post_attention_layernorm.weight")
			gate := linear(h, pre+"mlp.gate_proj.weight", "")
			up := linear(h, pre+"mlp.up_proj.weight", "")
			act := b.op("Mul", []string{b.op("Mul", []string{gate, b.op("Sigmoid", []string{gate})}), up})
			x = b.op("Add", []string{x, linear(act, pre+"mlp.down_proj.weight", "")})
		}
	}

	switch p.Arch {
	case ArchGPT2:
		// Tied head: logits = h · wteᵀ, as a Gemm over [B·S, D] so the embedding is not copied.
		h := layerNorm(x, "transformer.ln_f")
		if p.Precision != FP32 && p.Precision != "" {
			// The quantised copy of the embedding (quant holds it under the embedding's name;
			// Gather reads the float32 one): MatMulNBits computes h·Bᵀ with B [vocab, d].
			matmul(model.Logits, h, "transformer.wte.weight")
			break
		}
		flat := b.op("Reshape", []string{h, b.ints(-1, d)})
		lg := b.op("Gemm", []string{flat, "transformer.wte.weight"}, attrInt("transB", 1))
		shape := b.op("Concat", []string{b.op("Shape", []string{model.InputIDs}), b.ints(int64(p.Vocab))}, attrInt("axis", 0))
		b.named(model.Logits, "Reshape", []string{lg, shape})
	case ArchLlama:
		h := rmsNorm(x, "model.norm.weight")
		matmul(model.Logits, h, "lm_head.weight")
	}
	g.Nodes = b.nodes
	return g
}
