package model

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/lemctl/lemctl/plugins/onnx/internal/onnxpb"
)

// Element types of quantised parameters, outside ONNX's own numbering, for counting by type.
const (
	pseudoInt4 int32 = -4
	pseudoInt8 int32 = -8
)

var pseudoTypeNames = map[int32]string{pseudoInt4: "int4", pseudoInt8: "int8"}

// ONNX's 4-bit element types.
const (
	onnxUint4 int32 = 21
	onnxInt4  int32 = 22
)

// quantInfo is what the graph says about weight quantisation.
type quantInfo struct {
	weights map[string]quantWeight // quantised weight initialisers
	aux     map[string]bool        // their scales and zero points (not parameters)
	scheme  string
}

type quantWeight struct {
	elements   int64 // the matrix it stands for (0: the initialiser's own elements)
	pseudoType int32
}

// quantisation finds the weights of MatMulNBits nodes (ONNX Runtime's block-wise 4/8-bit
// matmul: B packed, scales, optional zero points) and of DequantizeLinear nodes over
// initialisers (a QDQ export).
func quantisation(g *onnxpb.Graph) quantInfo {
	isInit := map[string]*onnxpb.Tensor{}
	for _, t := range g.Initializers {
		isInit[t.Name] = t
	}
	qi := quantInfo{weights: map[string]quantWeight{}, aux: map[string]bool{}}
	nbits := map[string]int64{} // "bits/block/zp" → elements
	qdq := map[string]int64{}
	for _, n := range g.Nodes {
		switch {
		case n.OpType == "MatMulNBits" && len(n.Inputs) > 2 && isInit[n.Inputs[1]] != nil:
			k, nn, bits, block := attrI(n, "K"), attrI(n, "N"), attrI(n, "bits"), attrI(n, "block_size")
			if bits == 0 {
				bits = 4
			}
			pt := pseudoInt4
			if bits == 8 {
				pt = pseudoInt8
			}
			qi.weights[n.Inputs[1]] = quantWeight{elements: k * nn, pseudoType: pt}
			zp := "symmetric"
			for _, a := range n.Inputs[2:] {
				if a != "" && isInit[a] != nil {
					qi.aux[a] = true
				}
			}
			if len(n.Inputs) > 3 && n.Inputs[3] != "" {
				zp = "asymmetric"
			}
			nbits[fmt.Sprintf("MatMulNBits %d-bit, block %d, %s", bits, block, zp)] += k * nn
		case n.OpType == "DequantizeLinear" && len(n.Inputs) > 1 && isInit[n.Inputs[0]] != nil:
			t := isInit[n.Inputs[0]]
			pt, name := pseudoInt8, "int8"
			if t.DataType == onnxUint4 || t.DataType == onnxInt4 {
				pt, name = pseudoInt4, "int4"
			}
			qi.weights[t.Name] = quantWeight{pseudoType: pt}
			granularity := "per-tensor"
			if s := isInit[n.Inputs[1]]; s != nil && s.Elements() > 1 {
				granularity = "per-channel"
				if attrI(n, "block_size") > 0 {
					granularity = "block " + strconv.FormatInt(attrI(n, "block_size"), 10)
				}
			}
			for _, a := range n.Inputs[1:] {
				if a != "" && isInit[a] != nil {
					qi.aux[a] = true
				}
			}
			qdq[fmt.Sprintf("QDQ %s (DequantizeLinear), %s", name, granularity)] += t.Elements()
		}
	}
	var parts []string
	for _, m := range []map[string]int64{nbits, qdq} {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
		parts = append(parts, keys...)
	}
	qi.scheme = strings.Join(parts, "; ")
	return qi
}

func attrI(n *onnxpb.Node, name string) int64 {
	for _, a := range n.Attrs {
		if a.Name == name {
			return a.I
		}
	}
	return 0
}

// gatheredOnly returns the initialisers every consumer of which is a Gather reading rows of
// them (input 0): embeddings, of which decoding a token reads one row.
func gatheredOnly(g *onnxpb.Graph) map[string]bool {
	uses := map[string][2]int{} // name → [gather data uses, other uses]
	for _, n := range g.Nodes {
		for i, x := range n.Inputs {
			u := uses[x]
			if n.OpType == "Gather" && i == 0 && attrI(n, "axis") == 0 {
				u[0]++
			} else {
				u[1]++
			}
			uses[x] = u
		}
	}
	out := map[string]bool{}
	for name, u := range uses {
		if u[0] > 0 && u[1] == 0 {
			out[name] = true
		}
	}
	return out
}

// tensorBytes is the stored size of an initialiser.
func tensorBytes(t *onnxpb.Tensor) int64 {
	if t.Location == onnxpb.LocationExternal {
		if n, err := strconv.ParseInt(t.ExternalValue("length"), 10, 64); err == nil {
			return n
		}
	}
	if t.RawBytes > 0 {
		return t.RawBytes
	}
	return t.Elements() * onnxpb.ElemSize(t.DataType)
}

// precisionName maps a parameter element type to a precision.
func precisionName(dtype string) string {
	switch dtype {
	case "float32":
		return "fp32"
	case "float16":
		return "fp16"
	case "bfloat16":
		return "bf16"
	case "float64":
		return "fp64"
	}
	return dtype // int8, int4
}
