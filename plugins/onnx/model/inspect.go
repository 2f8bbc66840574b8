package model

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/lemctl/lemctl/plugins/onnx/internal/onnxpb"
	"github.com/lemctl/lemctl/sdk"
)

// File names of an optimum export directory.
const (
	ModelFile           = "model.onnx"
	DataFile            = "model.onnx.data" // external weights, as synthetic models write them
	ConfigFile          = "config.json"
	GenConfigFile       = "generation_config.json"
	TokenizerJSON       = "tokenizer.json"
	TokenizerConfigFile = "tokenizer_config.json"
	VocabJSON           = "vocab.json"
	MergesTxt           = "merges.txt"
)

// TensorInfo is one graph input or output.
type TensorInfo struct {
	Name  string
	DType string
	Shape []string // a number or a symbolic name per dimension
}

// Info is everything known about a model directory without running it.
type Info struct {
	Dir       string
	ModelPath string
	// DataFiles are the external-data files, in the order the initialisers first use them.
	DataFiles []string
	Config    *Config
	Inputs    []TensorInfo
	Outputs   []TensorInfo
	// HasPositionIDs: the graph takes position_ids (without it, left-padded batches are not
	// exact: the model derives positions itself).
	HasPositionIDs bool
	// Parameters counts the elements of floating-point initialisers of rank ≥ 1 (scalars are
	// constants, not parameters); a tied head stored twice is counted once.
	Parameters int64
	DType      string // the element type of most parameters, e.g. "float32", "int4"
	// Precision is int8 or int4 when matrices are quantised (the width most quantised
	// parameters have), else the float type of most parameters: fp32, fp16, bf16.
	Precision string
	// QuantScheme describes weight quantisation ("none" when there is none).
	QuantScheme string
	// WeightBytes is the size of every initialiser; BytesPerToken what decoding one token reads
	// of them (the whole of each, but one row of a table only Gather reads: an embedding).
	WeightBytes, BytesPerToken int64
	// TokenizerFiles are tokenizer.json, or vocab.json + merges.txt.
	TokenizerFiles []string
	Opset          int64
	Producer       string
	// Metadata is the model's metadata_props.
	Metadata map[string]string
}

// Files returns every file of the model: model, external data, config, tokenizer.
func (in *Info) Files() []string {
	fs := []string{in.ModelPath}
	fs = append(fs, in.DataFiles...)
	fs = append(fs, filepath.Join(in.Dir, ConfigFile))
	if _, err := os.Stat(filepath.Join(in.Dir, GenConfigFile)); err == nil {
		fs = append(fs, filepath.Join(in.Dir, GenConfigFile))
	}
	return append(fs, in.TokenizerFiles...)
}

// Inspect checks that dir is a usable model directory (optimum layout) and describes it:
// missing files are named, a model.onnx that cannot be parsed is reported as corrupt, and one
// without the inputs and outputs of a text-generation-with-past export names what it has.
// Errors wrap sdk.ErrNotFound (missing files) or sdk.ErrInvalidArgument (bad contents).
func Inspect(dir string) (*Info, error) {
	st, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: model directory %s does not exist (a model reference is an optimum export directory or synthetic:<preset>)", sdk.ErrNotFound, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: model directory %s: %v", sdk.ErrNotFound, dir, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory (a model reference is an optimum export directory or synthetic:<preset>)", sdk.ErrInvalidArgument, dir)
	}
	in := &Info{Dir: dir, ModelPath: filepath.Join(dir, ModelFile)}
	var missing []string
	if _, err := os.Stat(in.ModelPath); err != nil {
		missing = append(missing, ModelFile)
	}
	if _, err := os.Stat(filepath.Join(dir, ConfigFile)); err != nil {
		missing = append(missing, ConfigFile)
	}
	if _, err := os.Stat(filepath.Join(dir, TokenizerJSON)); err == nil {
		in.TokenizerFiles = []string{filepath.Join(dir, TokenizerJSON)}
	} else {
		var tmiss []string
		for _, f := range []string{VocabJSON, MergesTxt} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				tmiss = append(tmiss, f)
			} else {
				in.TokenizerFiles = append(in.TokenizerFiles, filepath.Join(dir, f))
			}
		}
		if len(tmiss) > 0 {
			missing = append(missing, fmt.Sprintf("%s (or %s)", strings.Join(tmiss, " + "), TokenizerJSON))
			in.TokenizerFiles = nil
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: model directory %s lacks %s (an optimum export has model.onnx, config.json and tokenizer.json or vocab.json + merges.txt; found: %s)",
			sdk.ErrNotFound, dir, strings.Join(missing, ", "), listDir(dir))
	}
	if in.Config, err = ReadConfig(dir); err != nil {
		return nil, err
	}
	if err := in.readGraph(); err != nil {
		return nil, err
	}
	return in, nil
}

func listDir(dir string) string {
	es, err := os.ReadDir(dir)
	if err != nil || len(es) == 0 {
		return "nothing"
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return strings.Join(names, ", ")
}

// readGraph parses model.onnx (memory-mapped; weights are not read) and checks its interface.
func (in *Info) readGraph() error {
	data, unmap, err := mapFile(in.ModelPath)
	if err != nil {
		return err
	}
	defer unmap()
	m, err := onnxpb.Decode(data)
	if err != nil {
		return fmt.Errorf("%w: %s is corrupt or not an ONNX model: %v", sdk.ErrInvalidArgument, in.ModelPath, err)
	}
	in.Producer = strings.TrimSpace(m.ProducerName + " " + m.ProducerVersion)
	for _, o := range m.Opsets {
		if o.Domain == "" || o.Domain == "ai.onnx" {
			in.Opset = o.Version
		}
	}
	in.Metadata = map[string]string{}
	for _, e := range m.Metadata {
		in.Metadata[e.Key] = e.Value
	}
	conv := func(vs []onnxpb.ValueInfo) []TensorInfo {
		out := make([]TensorInfo, 0, len(vs))
		for _, v := range vs {
			t := TensorInfo{Name: v.Name, DType: onnxpb.TypeName(v.ElemType)}
			for _, d := range v.Shape {
				t.Shape = append(t.Shape, d.String())
			}
			out = append(out, t)
		}
		return out
	}
	in.Inputs, in.Outputs = conv(m.Graph.Inputs), conv(m.Graph.Outputs)
	if err := in.checkInterface(m.Graph); err != nil {
		return err
	}
	return in.countParameters(m.Graph)
}

// checkInterface verifies the optimum text-generation-with-past interface.
func (in *Info) checkInterface(g *onnxpb.Graph) error {
	c := in.Config
	inputs, outputs := map[string]onnxpb.ValueInfo{}, map[string]onnxpb.ValueInfo{}
	for _, v := range g.Inputs {
		inputs[v.Name] = v
	}
	for _, v := range g.Outputs {
		outputs[v.Name] = v
	}
	in.HasPositionIDs = inputs[PositionIDs].Name != ""
	wantIn := []string{InputIDs, AttentionMask}
	wantOut := []string{Logits}
	for i := 0; i < c.Layers; i++ {
		wantIn = append(wantIn, PastKey(i), PastValue(i))
		wantOut = append(wantOut, PresentKey(i), PresentValue(i))
	}
	var missIn, missOut []string
	for _, n := range wantIn {
		if _, ok := inputs[n]; !ok {
			missIn = append(missIn, n)
		}
	}
	for _, n := range wantOut {
		if _, ok := outputs[n]; !ok {
			missOut = append(missOut, n)
		}
	}
	if len(missIn)+len(missOut) > 0 {
		var lack []string
		if len(missIn) > 0 {
			lack = append(lack, "inputs "+abbrev(missIn))
		}
		if len(missOut) > 0 {
			lack = append(lack, "outputs "+abbrev(missOut))
		}
		return fmt.Errorf("%w: %s lacks %s of a decoder with KV cache (%d layers per config.json; export with `optimum-cli export onnx --task text-generation-with-past`); found inputs %s and outputs %s",
			sdk.ErrInvalidArgument, in.ModelPath, strings.Join(lack, " and "), c.Layers, abbrev(names(g.Inputs)), abbrev(names(g.Outputs)))
	}
	for _, n := range []string{InputIDs, AttentionMask} {
		if v := inputs[n]; v.ElemType != onnxpb.Int64 {
			return fmt.Errorf("%w: %s: input %s is %s, expected int64", sdk.ErrInvalidArgument, in.ModelPath, n, onnxpb.TypeName(v.ElemType))
		}
	}
	// The cache tensors are [batch, kv_heads, sequence, head_dim]; check fixed dims.
	v := inputs["past_key_values.0.key"]
	if v.HasShape {
		if len(v.Shape) != 4 {
			return fmt.Errorf("%w: %s: past_key_values.0.key has rank %d, expected 4 ([batch, kv_heads, past, head_dim])", sdk.ErrInvalidArgument, in.ModelPath, len(v.Shape))
		}
		if d := v.Shape[1].Value; d != 0 && d != int64(c.KVHeads) {
			return fmt.Errorf("%w: %s: past_key_values.0.key has %d KV heads but config.json implies %d", sdk.ErrInvalidArgument, in.ModelPath, d, c.KVHeads)
		}
		if d := v.Shape[3].Value; d != 0 && d != int64(c.HeadDim) {
			return fmt.Errorf("%w: %s: past_key_values.0.key has head dim %d but config.json implies %d", sdk.ErrInvalidArgument, in.ModelPath, d, c.HeadDim)
		}
	}
	return nil
}

func names(vs []onnxpb.ValueInfo) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Name
	}
	return out
}

// abbrev lists names, shortening long lists.
func abbrev(ns []string) string {
	if len(ns) == 0 {
		return "[]"
	}
	if len(ns) > 8 {
		return fmt.Sprintf("[%s … %s] (%d)", strings.Join(ns[:6], ", "), ns[len(ns)-1], len(ns))
	}
	return "[" + strings.Join(ns, ", ") + "]"
}

// countParameters sums the weights (float initialisers, and the matrices quantised weights
// stand for), measures their bytes, and checks external data files.
func (in *Info) countParameters(g *onnxpb.Graph) error {
	byType := map[int32]int64{}
	dataEnd := map[string]int64{}
	embedShapes := 0
	c := in.Config
	qi := quantisation(g)
	gathered := gatheredOnly(g)
	for _, t := range g.Initializers {
		bytes := tensorBytes(t)
		in.WeightBytes += bytes
		if gathered[t.Name] && len(t.Dims) > 0 && t.Dims[0] > 0 {
			in.BytesPerToken += bytes / t.Dims[0] // Gather reads one row per token
		} else {
			in.BytesPerToken += bytes
		}
		if q, ok := qi.weights[t.Name]; ok {
			n := q.elements
			if n == 0 {
				n = t.Elements()
			}
			if c.TiedHead && n == int64(c.Vocab)*int64(c.Hidden) {
				embedShapes++ // a quantised copy of the tied head counts once, as below
			}
			if !c.TiedHead || n != int64(c.Vocab)*int64(c.Hidden) || embedShapes == 1 {
				byType[q.pseudoType] += n
				in.Parameters += n
			}
		}
		if t.Location == onnxpb.LocationExternal {
			loc := t.ExternalValue("location")
			if loc == "" || filepath.IsAbs(loc) || strings.HasPrefix(filepath.Clean(loc), "..") {
				return fmt.Errorf("%w: %s: initializer %s has external data location %q; it must be a file beside the model", sdk.ErrInvalidArgument, in.ModelPath, t.Name, loc)
			}
			off, _ := strconv.ParseInt(t.ExternalValue("offset"), 10, 64)
			length, err := strconv.ParseInt(t.ExternalValue("length"), 10, 64)
			if err != nil {
				length = t.Elements() * onnxpb.ElemSize(t.DataType)
			}
			if _, seen := dataEnd[loc]; !seen {
				in.DataFiles = append(in.DataFiles, filepath.Join(in.Dir, loc))
			}
			dataEnd[loc] = max(dataEnd[loc], off+length)
		} else if want := t.Elements() * onnxpb.ElemSize(t.DataType); t.RawBytes > 0 && want > 0 && t.RawBytes != want {
			return fmt.Errorf("%w: %s is corrupt: initializer %s has %d bytes of data, its shape needs %d", sdk.ErrInvalidArgument, in.ModelPath, t.Name, t.RawBytes, want)
		}
		if !onnxpb.IsFloat(t.DataType) || len(t.Dims) == 0 || qi.aux[t.Name] {
			continue
		}
		n := t.Elements()
		if c.TiedHead && len(t.Dims) == 2 && n == int64(c.Vocab)*int64(c.Hidden) &&
			(t.Dims[0] == int64(c.Vocab) || t.Dims[1] == int64(c.Vocab)) {
			embedShapes++
			if embedShapes > 1 { // the tied head stored a second time (e.g. transposed): count once
				continue
			}
		}
		byType[t.DataType] += n
		in.Parameters += n
	}
	for _, f := range in.DataFiles {
		st, err := os.Stat(f)
		if err != nil {
			return fmt.Errorf("%w: %s: external data file %s is missing (the model's weights are stored there)", sdk.ErrNotFound, in.ModelPath, filepath.Base(f))
		}
		if need := dataEnd[filepath.Base(f)]; st.Size() < need {
			return fmt.Errorf("%w: external data file %s is truncated: %d bytes, the initialisers need %d", sdk.ErrInvalidArgument, f, st.Size(), need)
		}
	}
	if in.Parameters == 0 {
		return fmt.Errorf("%w: %s has no floating-point initialisers (no weights)", sdk.ErrInvalidArgument, in.ModelPath)
	}
	var dts []int32
	for dt := range byType {
		dts = append(dts, dt)
	}
	sort.Slice(dts, func(i, j int) bool {
		return byType[dts[i]] > byType[dts[j]] || byType[dts[i]] == byType[dts[j]] && dts[i] < dts[j]
	})
	in.DType = onnxpb.TypeName(dts[0])
	if name, ok := pseudoTypeNames[dts[0]]; ok {
		in.DType = name
	}
	in.Precision, in.QuantScheme = precisionName(in.DType), "none"
	if qi.scheme != "" {
		// The precision of the quantised matrices, even where float32 embeddings outnumber
		// them (a small model with a large vocabulary).
		in.QuantScheme = qi.scheme
		if byType[pseudoInt4] >= byType[pseudoInt8] {
			in.Precision = "int4"
		} else {
			in.Precision = "int8"
		}
	}
	if in.Parameters <= c.EmbeddingParameters() {
		return fmt.Errorf("%w: %s has %d parameters, no more than config.json's embeddings (%d): config.json does not describe this model",
			sdk.ErrInvalidArgument, in.ModelPath, in.Parameters, c.EmbeddingParameters())
	}
	return nil
}

// mapFile maps path read-only.
func mapFile(path string) ([]byte, func(), error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", sdk.ErrNotFound, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if st.Size() == 0 {
		return nil, nil, fmt.Errorf("%w: %s is empty (corrupt model file)", sdk.ErrInvalidArgument, path)
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("map %s: %w", path, err)
	}
	return data, func() { syscall.Munmap(data) }, nil
}

// SHA256 hashes the model file and then its external data files, in order, as one stream.
func (in *Info) SHA256() (string, error) {
	h := sha256.New()
	for _, f := range append([]string{in.ModelPath}, in.DataFiles...) {
		if err := hashInto(h, f); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashInto(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("hash %s: %w", path, err)
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("hash %s: %w", path, err)
	}
	return nil
}
