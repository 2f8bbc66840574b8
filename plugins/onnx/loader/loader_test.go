package loader_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/lemctl/lemctl/plugins/onnx/internal/onnxpb"
	"github.com/lemctl/lemctl/plugins/onnx/internal/testenv"
	"github.com/lemctl/lemctl/plugins/onnx/loader"
	"github.com/lemctl/lemctl/plugins/onnx/model"
	"github.com/lemctl/lemctl/sdk"
)

// cacheDir is shared by the package's tests, so gpt2-124m is generated once per run.
var cacheDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "lemctl-loader-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cacheDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

func newLoader(t testing.TB) *loader.Loader {
	t.Helper()
	v := testenv.Vocab(t)
	l := loader.New()
	l.SetSettings(loader.Settings{CacheDir: cacheDir, VocabDir: filepath.Dir(v.EncoderJSON)})
	return l
}

var (
	big     *sdk.Artifact
	bigErr  error
	bigOnce sync.Once
)

// gpt2124m resolves synthetic:gpt2-124m once per test run.
func gpt2124m(t *testing.T) *sdk.Artifact {
	t.Helper()
	l := newLoader(t)
	bigOnce.Do(func() { big, bigErr = l.Resolve(context.Background(), "synthetic:gpt2-124m") })
	if bigErr != nil {
		t.Fatal(bigErr)
	}
	return big
}

func TestGPT2SmallParametersAndFLOPs(t *testing.T) {
	a := gpt2124m(t)
	if a.Parameters != 124_439_808 {
		t.Errorf("parameters = %d, want 124,439,808", a.Parameters)
	}
	// docs/methodology.md "FLOPs", from the shape: 12 layers, d = 768, vocab 50257, 1024
	// learned positions, tied head.
	const layers, d, vocab, positions = 12, 768, 50257, 1024
	embeddings := int64(vocab*d + positions*d)
	nonEmbedding := int64(124_439_808) - embeddings
	head := int64(vocab * d)
	if a.NonEmbeddingParameters != nonEmbedding {
		t.Errorf("non-embedding parameters = %d, want %d", a.NonEmbeddingParameters, nonEmbedding)
	}
	analytic := func(pos int64) int64 { return 2*(nonEmbedding+head) + 4*layers*pos*d }
	for _, pos := range []int{1, 1024} {
		if got, want := a.FLOPs.At(pos), analytic(int64(pos)); got != want {
			t.Errorf("FLOPs at position %d = %d, want %d", pos, got, want)
		}
	}
	// ≈ 285 MFLOP per token at 1024: 170 non-embedding + 77 head + 38 attention.
	if got := float64(a.FLOPs.At(1024)) / 1e6; got < 284.5 || got > 285.5 {
		t.Errorf("FLOPs at 1024 = %.1f MFLOP, want ≈ 285", got)
	}
	if a.Architecture != "gpt2" || a.DType != "float32" || !a.Synthetic || a.ContextLength != 1024 ||
		a.KV != (sdk.KVLayout{Layers: 12, KVHeads: 12, HeadDim: 64}) || a.VocabSize != 50257 ||
		!reflect.DeepEqual(a.EOSTokenIDs, []int32{50256}) || a.BOSTokenID != 50256 || a.PadTokenID != -1 {
		t.Errorf("artifact = %+v", a)
	}
	if len(a.SHA256) != 64 || a.Format != "onnx" || filepath.Base(a.Path) != "model.onnx" {
		t.Errorf("artifact file facts: path %s sha256 %q format %q", a.Path, a.SHA256, a.Format)
	}
	var hasData bool
	for _, f := range a.Files {
		hasData = hasData || filepath.Base(f) == "model.onnx.data"
	}
	if !hasData {
		t.Errorf("files %v lack model.onnx.data", a.Files)
	}
}

func TestGPT2SmallRunsInORT(t *testing.T) {
	a := gpt2124m(t)
	testenv.ORT(t)
	d := testenv.NewDecoder(t, a.Metadata["model_dir"])
	ids, _ := testenv.Greedy(t, d, []int64{15496, 11, 616, 1438, 318}, 6)
	distinct := map[int64]bool{}
	for _, id := range ids {
		distinct[id] = true
	}
	t.Logf("gpt2-124m greedy ids %v", ids)
	if len(distinct) < 3 {
		t.Errorf("gpt2-124m greedy decoding is degenerate: %v", ids)
	}
}

func TestGPT2SmallPassesChecker(t *testing.T) {
	a := gpt2124m(t)
	py := testenv.Python(t)
	// check_model on a path handles external data without loading it all into a protobuf.
	out, err := exec.Command(py, "-c", "import sys, onnx; onnx.checker.check_model(sys.argv[1])", a.Path).CombinedOutput()
	if err != nil {
		t.Fatalf("onnx.checker rejected gpt2-124m: %v\n%s", err, out)
	}
}

func TestResolveTinyPresets(t *testing.T) {
	l := newLoader(t)
	ctx := context.Background()
	for _, tc := range []struct {
		ref     string
		arch    string
		kv      sdk.KVLayout
		heads   int
		tied    string
		context int
	}{
		{"synthetic:gpt2-tiny", "gpt2", sdk.KVLayout{Layers: 2, KVHeads: 4, HeadDim: 16}, 4, "true", 128},
		{"synthetic:llama-tiny?seed=5", "llama", sdk.KVLayout{Layers: 2, KVHeads: 2, HeadDim: 16}, 4, "false", 256},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			a, err := l.Resolve(ctx, tc.ref)
			if err != nil {
				t.Fatal(err)
			}
			if a.Architecture != tc.arch || a.KV != tc.kv || a.Heads != tc.heads || a.Metadata["tied_head"] != tc.tied || a.ContextLength != tc.context {
				t.Errorf("artifact = %+v", a)
			}
			if a.Reference != tc.ref || !a.Synthetic || a.Tokenizer.Kind != "byte-level-bpe" || a.Tokenizer.VocabSize != 50257 {
				t.Errorf("artifact = %+v", a)
			}
			// FLOPs coefficients follow the formula from the config and the parameter count.
			c, err := model.ReadConfig(a.Metadata["model_dir"])
			if err != nil {
				t.Fatal(err)
			}
			emb := int64(c.Vocab * c.Hidden)
			if c.LearnedPositions {
				emb += int64(c.ContextLength * c.Hidden)
			}
			nonEmb := a.Parameters - emb
			if !c.TiedHead {
				nonEmb -= int64(c.Vocab * c.Hidden)
			}
			want := sdk.FLOPsCoefficients{PerToken: 2 * (nonEmb + int64(c.Vocab*c.Hidden)), PerTokenPosition: int64(4 * c.Layers * c.Hidden)}
			if a.FLOPs != want || a.NonEmbeddingParameters != nonEmb {
				t.Errorf("FLOPs %+v non-embedding %d; want %+v, %d", a.FLOPs, a.NonEmbeddingParameters, want, nonEmb)
			}
			// Resolving again is served from the cache and equal.
			b, err := l.Resolve(ctx, tc.ref)
			if err != nil || b.SHA256 != a.SHA256 || b.Parameters != a.Parameters {
				t.Errorf("second resolve: %v %+v", err, b)
			}
		})
	}
	a, _ := l.Resolve(ctx, "synthetic:gpt2-tiny")
	b, err := l.Resolve(ctx, "synthetic:gpt2-tiny?seed=1")
	if err != nil {
		t.Fatal(err)
	}
	if a.SHA256 == b.SHA256 || a.Parameters != b.Parameters {
		t.Errorf("seed 0 and 1: sha256 %s vs %s (want different), parameters %d vs %d (want equal)", a.SHA256, b.SHA256, a.Parameters, b.Parameters)
	}
}

func TestTokenizeDetokenize(t *testing.T) {
	l := newLoader(t)
	ctx := context.Background()
	ids, err := l.Tokenize(ctx, "synthetic:gpt2-tiny", []string{"Hello, my name is", "", "naïve 😀"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ids[0], []int32{15496, 11, 616, 1438, 318}) || len(ids[1]) != 0 {
		t.Errorf("Tokenize = %v", ids)
	}
	texts, err := l.Detokenize(ctx, "synthetic:gpt2-tiny", ids)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(texts, []string{"Hello, my name is", "", "naïve 😀"}) {
		t.Errorf("Detokenize = %q", texts)
	}
	if _, err := l.Detokenize(ctx, "synthetic:gpt2-tiny", [][]int32{{1, 99999}}); !errors.Is(err, sdk.ErrInvalidArgument) || !strings.Contains(err.Error(), "99999") {
		t.Errorf("Detokenize(bad id) err = %v", err)
	}
}

// optimumDir copies a generated tiny model into a fresh folder laid out like an optimum export
// (tokenizer.json instead of vocab.json + merges.txt, no lemctl_synthetic in config.json).
func optimumDir(t *testing.T) string {
	t.Helper()
	l := newLoader(t)
	a, err := l.Resolve(context.Background(), "synthetic:gpt2-tiny")
	if err != nil {
		t.Fatal(err)
	}
	src := a.Metadata["model_dir"]
	dst := t.TempDir()
	for _, f := range []string{"model.onnx", "model.onnx.data", "generation_config.json"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dst, f), b, 0o644)
	}
	var cfg map[string]any
	raw, _ := os.ReadFile(filepath.Join(src, "config.json"))
	json.Unmarshal(raw, &cfg)
	delete(cfg, "lemctl_synthetic")
	raw, _ = json.Marshal(cfg)
	os.WriteFile(filepath.Join(dst, "config.json"), raw, 0o644)
	vocab, _ := os.ReadFile(filepath.Join(src, "vocab.json"))
	merges, _ := os.ReadFile(filepath.Join(src, "merges.txt"))
	var ms []string
	for i, line := range strings.Split(string(merges), "\n") {
		if i > 0 && line != "" {
			ms = append(ms, line)
		}
	}
	mj, _ := json.Marshal(ms)
	tj := fmt.Sprintf(`{"version":"1.0","added_tokens":[{"id":50256,"content":"<|endoftext|>","special":true}],"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true},"model":{"type":"BPE","vocab":%s,"merges":%s}}`, vocab, mj)
	os.WriteFile(filepath.Join(dst, "tokenizer.json"), []byte(tj), 0o644)
	return dst
}

func TestResolveOptimumDirectory(t *testing.T) {
	dir := optimumDir(t)
	l := newLoader(t)
	ctx := context.Background()
	syn, _ := l.Resolve(ctx, "synthetic:gpt2-tiny")
	a, err := l.Resolve(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if a.Synthetic || a.Parameters != syn.Parameters || a.FLOPs != syn.FLOPs || a.SHA256 != syn.SHA256 {
		t.Errorf("optimum copy: synthetic %v parameters %d FLOPs %+v sha %s; synthetic original %d %+v %s",
			a.Synthetic, a.Parameters, a.FLOPs, a.SHA256, syn.Parameters, syn.FLOPs, syn.SHA256)
	}
	if len(a.Tokenizer.Files) != 1 || filepath.Base(a.Tokenizer.Files[0]) != "tokenizer.json" {
		t.Errorf("tokenizer files %v", a.Tokenizer.Files)
	}
	got, err := l.Tokenize(ctx, dir, []string{"Hello, my name is"})
	if err != nil || !reflect.DeepEqual(got[0], []int32{15496, 11, 616, 1438, 318}) {
		t.Errorf("Tokenize via tokenizer.json = %v, %v", got, err)
	}
	// A relative path resolves too.
	wd, _ := os.Getwd()
	rel, err := filepath.Rel(wd, dir)
	if err == nil {
		if b, err := l.Resolve(ctx, rel); err != nil || b.Path != a.Path {
			t.Errorf("relative reference %s: %v", rel, err)
		}
	}
}

// writeModel writes a small ONNX model with the given inputs and outputs into dir.
func writeModel(t *testing.T, dir string, inputs, outputs []string) {
	t.Helper()
	vi := func(n string) onnxpb.ValueInfo {
		return onnxpb.ValueInfo{Name: n, ElemType: onnxpb.Int64, Shape: []onnxpb.Dim{{Param: "b"}, {Param: "s"}}, HasShape: true}
	}
	g := &onnxpb.Graph{Name: "g", Initializers: []*onnxpb.Tensor{{Name: "w", Dims: []int64{50257, 64}, DataType: onnxpb.Float,
		Location: onnxpb.LocationExternal, External: []onnxpb.Entry{{Key: "location", Value: "model.onnx.data"}, {Key: "offset", Value: "0"}, {Key: "length", Value: "12865792"}}},
		{Name: "w2", Dims: []int64{64, 64}, DataType: onnxpb.Float, RawData: make([]byte, 64*64*4)}}}
	for _, n := range inputs {
		g.Inputs = append(g.Inputs, vi(n))
	}
	for _, n := range outputs {
		g.Outputs = append(g.Outputs, vi(n))
	}
	m := &onnxpb.Model{IRVersion: 8, Opsets: []onnxpb.OpsetID{{Version: 17}}, Graph: g}
	if err := os.WriteFile(filepath.Join(dir, "model.onnx"), m.Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBadReferences(t *testing.T) {
	l := newLoader(t)
	ctx := context.Background()
	good := optimumDir(t)
	copyDir := func(t *testing.T, skip ...string) string {
		dst := t.TempDir()
		es, _ := os.ReadDir(good)
	next:
		for _, e := range es {
			for _, s := range skip {
				if e.Name() == s {
					continue next
				}
			}
			b, _ := os.ReadFile(filepath.Join(good, e.Name()))
			os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644)
		}
		return dst
	}
	for _, tc := range []struct {
		name  string
		ref   func(t *testing.T) string
		is    error
		wants []string
	}{
		{"unknown preset", func(*testing.T) string { return "synthetic:gpt5" }, sdk.ErrInvalidArgument,
			[]string{`"gpt5"`, "gpt2-124m, gpt2-tiny, llama-tiny"}},
		{"bad seed", func(*testing.T) string { return "synthetic:gpt2-tiny?seed=-1" }, sdk.ErrInvalidArgument, []string{"seed"}},
		{"unknown option", func(*testing.T) string { return "synthetic:gpt2-tiny?size=3" }, sdk.ErrInvalidArgument, []string{`"size"`, "seed=N"}},
		{"empty reference", func(*testing.T) string { return " " }, sdk.ErrInvalidArgument, []string{"synthetic:<preset>"}},
		{"no such directory", func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope") }, sdk.ErrNotFound, []string{"nope"}},
		{"a file, not a directory", func(t *testing.T) string { return filepath.Join(good, "config.json") }, sdk.ErrInvalidArgument, []string{"not a directory"}},
		{"missing model.onnx", func(t *testing.T) string { return copyDir(t, "model.onnx") }, sdk.ErrNotFound, []string{"lacks model.onnx", "found: config.json"}},
		{"missing config and tokenizer", func(t *testing.T) string { return copyDir(t, "config.json", "tokenizer.json") }, sdk.ErrNotFound,
			[]string{"config.json", "vocab.json + merges.txt (or tokenizer.json)"}},
		{"missing external data", func(t *testing.T) string { return copyDir(t, "model.onnx.data") }, sdk.ErrNotFound, []string{"model.onnx.data is missing"}},
		{"truncated external data", func(t *testing.T) string {
			d := copyDir(t)
			os.Truncate(filepath.Join(d, "model.onnx.data"), 1000)
			return d
		}, sdk.ErrInvalidArgument, []string{"truncated"}},
		{"corrupt model file", func(t *testing.T) string {
			d := copyDir(t)
			os.WriteFile(filepath.Join(d, "model.onnx"), []byte("\x0a\xff\xff\xff\xffgarbage that is not protobuf"), 0o644)
			return d
		}, sdk.ErrInvalidArgument, []string{"corrupt or not an ONNX model"}},
		{"truncated model file", func(t *testing.T) string {
			d := copyDir(t)
			b, _ := os.ReadFile(filepath.Join(d, "model.onnx"))
			os.WriteFile(filepath.Join(d, "model.onnx"), b[:len(b)/2], 0o644)
			return d
		}, sdk.ErrInvalidArgument, []string{"corrupt"}},
		{"empty model file", func(t *testing.T) string {
			d := copyDir(t)
			os.WriteFile(filepath.Join(d, "model.onnx"), nil, 0o644)
			return d
		}, sdk.ErrInvalidArgument, []string{"empty"}},
		{"model without KV-cache inputs", func(t *testing.T) string {
			d := copyDir(t)
			writeModel(t, d, []string{"input_ids", "attention_mask"}, []string{"logits"})
			return d
		}, sdk.ErrInvalidArgument, []string{"lacks inputs [past_key_values.0.key", "outputs [present.0.key", "found inputs [input_ids, attention_mask] and outputs [logits]"}},
		{"config.json not JSON", func(t *testing.T) string {
			d := copyDir(t)
			os.WriteFile(filepath.Join(d, "config.json"), []byte("{"), 0o644)
			return d
		}, sdk.ErrInvalidArgument, []string{"config.json is not valid JSON"}},
		{"config.json without layers", func(t *testing.T) string {
			d := copyDir(t)
			os.WriteFile(filepath.Join(d, "config.json"), []byte(`{"model_type":"gpt2","n_embd":64,"n_head":4,"vocab_size":50257,"n_positions":128}`), 0o644)
			return d
		}, sdk.ErrInvalidArgument, []string{"num_hidden_layers", "n_layer", "missing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.Resolve(ctx, tc.ref(t))
			t.Logf("error: %v", err)
			if !errors.Is(err, tc.is) {
				t.Fatalf("err = %v; want %v", err, tc.is)
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestUnwritableCacheAndMissingVocab(t *testing.T) {
	v := testenv.Vocab(t)
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, []byte("x"), 0o644)
	l := loader.New()
	l.SetSettings(loader.Settings{CacheDir: filepath.Join(file, "cache"), VocabDir: filepath.Dir(v.EncoderJSON)})
	_, err := l.Resolve(ctx, "synthetic:gpt2-tiny")
	if !errors.Is(err, sdk.ErrFailedPrecondition) || !strings.Contains(err.Error(), "not writable") || !strings.Contains(err.Error(), "cache_dir") {
		t.Errorf("unwritable cache: err = %v", err)
	}
	l.SetSettings(loader.Settings{CacheDir: t.TempDir(), VocabDir: t.TempDir()})
	_, err = l.Resolve(ctx, "synthetic:gpt2-tiny")
	if !errors.Is(err, sdk.ErrFailedPrecondition) || !strings.Contains(err.Error(), "make setup") {
		t.Errorf("missing vocabulary: err = %v", err)
	}
}

func TestParseRef(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want loader.Ref
	}{
		{"synthetic:gpt2-tiny", loader.Ref{Preset: "gpt2-tiny"}},
		{"synthetic:llama-tiny?seed=42", loader.Ref{Preset: "llama-tiny", Seed: 42}},
		{"/models/gpt2", loader.Ref{Dir: "/models/gpt2"}},
		{"models/x", loader.Ref{Dir: "models/x"}},
	} {
		got, err := loader.ParseRef(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseRef(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

// TestQuantisedPresets: -q8 and -q4 presets have the fp32 preset's parameters and FLOPs, and
// report their precision, scheme, weight bytes and bytes read per token, which follow from the
// shape: every matrix (and the tied head's copy of the embedding) stored as K·N·bits/8 bytes
// plus a float32 scale and a zero point per block of 32; the embeddings, norms and biases
// float32; per token the whole of every weight but one row of each embedding.
func TestQuantisedPresets(t *testing.T) {
	l := newLoader(t)
	const d, inner, layers, vocab, positions = 64, 256, 2, 50257, 128
	fp, err := l.Resolve(context.Background(), "synthetic:gpt2-tiny")
	if err != nil {
		t.Fatal(err)
	}
	matrices := [][2]int64{{d, 3 * d}, {d, d}, {d, inner}, {inner, d}} // per layer, K × N
	floats := fp.Parameters                                            // fp32: every parameter
	for _, tc := range []struct {
		ref, precision string
		bits           int64
	}{
		{"synthetic:gpt2-tiny", "fp32", 32},
		{"synthetic:gpt2-tiny-q8", "int8", 8},
		{"synthetic:gpt2-tiny-q4", "int4", 4},
	} {
		t.Run(tc.precision, func(t *testing.T) {
			a, err := l.Resolve(context.Background(), tc.ref)
			if err != nil {
				t.Fatal(err)
			}
			if a.Parameters != fp.Parameters || a.FLOPs != fp.FLOPs || a.NonEmbeddingParameters != fp.NonEmbeddingParameters {
				t.Errorf("parameters %d, FLOPs %+v; fp32 has %d, %+v", a.Parameters, a.FLOPs, fp.Parameters, fp.FLOPs)
			}
			quant := func(k, n int64) int64 { // bytes of one quantised K × N matrix
				nb := (k + 31) / 32
				zp := n * nb
				if tc.bits == 4 {
					zp = n * ((nb + 1) / 2)
				}
				return k*n*tc.bits/8 + n*nb*4 + zp
			}
			embeddings := int64(vocab*d + positions*d)
			var weight, perToken int64
			if tc.bits == 32 {
				weight = floats * 4
				perToken = weight - positions*d*4 + d*4 // wpe: one row; wte: read whole by the head
			} else {
				var mats, matParams int64
				for _, m := range matrices {
					mats += layers * quant(m[0], m[1])
					matParams += layers * m[0] * m[1]
				}
				head := quant(d, vocab)
				rest := (floats - matParams) * 4 // embeddings, norms, biases
				weight = rest + mats + head
				perToken = rest - embeddings*4 + 2*d*4 + mats + head
			}
			want := map[string]string{"precision": tc.precision, "weight_bytes": strconv.FormatInt(weight, 10), "bytes_per_token": strconv.FormatInt(perToken, 10)}
			for k, v := range want {
				if a.Metadata[k] != v {
					t.Errorf("metadata %s = %q, want %q", k, a.Metadata[k], v)
				}
			}
			scheme := "none"
			if tc.bits != 32 {
				scheme = "MatMulNBits " + strconv.FormatInt(tc.bits, 10) + "-bit, block 32, asymmetric"
			}
			if a.Metadata["quant_scheme"] != scheme || a.DType != "float32" /* the embedding outnumbers the matrices */ {
				t.Errorf("quant_scheme %q dtype %q, want %q", a.Metadata["quant_scheme"], a.DType, scheme)
			}
		})
	}
}
