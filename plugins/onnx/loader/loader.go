package loader

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/lemctl/lemctl/plugins/onnx/model"
	"github.com/lemctl/lemctl/plugins/onnx/synth"
	"github.com/lemctl/lemctl/plugins/onnx/tokenizer"
	"github.com/lemctl/lemctl/sdk"
)

// SyntheticPrefix starts a synthetic model reference: synthetic:<preset>[?seed=N].
const SyntheticPrefix = "synthetic:"

// Settings are the loader's configuration (the plugin's config keys).
type Settings struct {
	// LibraryPath is the configured ONNX Runtime library ("" = look it up; see
	// model.FindLibrary). The loader only validates it; the engine passes it to model.InitORT.
	LibraryPath string
	// CacheDir holds generated models; default os.UserCacheDir()/lemctl/models.
	CacheDir string
	// VocabDir holds the GPT-2 encoder.json and vocab.bpe synthetic models ship; default the
	// `make setup` folder's gpt2/.
	VocabDir string
}

// Loader implements sdk.Loader for optimum export directories and synthetic models.
type Loader struct {
	mu       sync.Mutex
	settings Settings
	// resolved caches artifacts and their tokenizers by reference, checked against the files'
	// sizes and mtimes (the tokenizer files are among them).
	resolved map[string]*entry
}

type entry struct {
	art   *sdk.Artifact
	tk    *tokenizer.Tokenizer
	stamp string
}

// New returns a loader with default settings.
func New() *Loader {
	return &Loader{resolved: map[string]*entry{}}
}

// SetSettings replaces the settings (the plugin's Configure calls it). Resolved artifacts stay
// cached unless the settings changed: re-resolving hashes every weight file again.
func (l *Loader) SetSettings(s Settings) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s != l.settings {
		l.resolved = map[string]*entry{}
	}
	l.settings = s
}

// Settings returns the current settings.
func (l *Loader) Settings() Settings {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.settings
}

// Ref is a parsed model reference.
type Ref struct {
	// Preset and Seed are set for a synthetic reference; Dir for a directory.
	Preset string
	Seed   uint64
	Dir    string
}

// ParseRef parses a model reference: synthetic:<preset>[?seed=N] or a directory path.
func ParseRef(ref string) (Ref, error) {
	if strings.TrimSpace(ref) == "" {
		return Ref{}, fmt.Errorf("%w: empty model reference (want a model directory or synthetic:<preset>[?seed=N], presets: %s)", sdk.ErrInvalidArgument, synth.PresetList())
	}
	rest, ok := strings.CutPrefix(ref, SyntheticPrefix)
	if !ok {
		return Ref{Dir: ref}, nil
	}
	name, query, _ := strings.Cut(rest, "?")
	if _, ok := synth.Lookup(name); !ok {
		return Ref{}, fmt.Errorf("%w: unknown synthetic preset %q in %q (valid presets: %s)", sdk.ErrInvalidArgument, name, ref, synth.PresetList())
	}
	r := Ref{Preset: name}
	if query != "" {
		q, err := url.ParseQuery(query)
		if err != nil {
			return Ref{}, fmt.Errorf("%w: %q: bad options after '?': %v (valid: seed=N)", sdk.ErrInvalidArgument, ref, err)
		}
		for k, vs := range q {
			if k != "seed" {
				return Ref{}, fmt.Errorf("%w: %q: unknown option %q (valid: seed=N)", sdk.ErrInvalidArgument, ref, k)
			}
			seed, err := strconv.ParseUint(vs[len(vs)-1], 10, 64)
			if err != nil || len(vs) != 1 {
				return Ref{}, fmt.Errorf("%w: %q: seed must be one unsigned integer, got %q", sdk.ErrInvalidArgument, ref, strings.Join(vs, ","))
			}
			r.Seed = seed
		}
	}
	return r, nil
}

// DefaultCacheDir is os.UserCacheDir()/lemctl/models.
func DefaultCacheDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("%w: no user cache folder for synthetic models (%v); set the onnx plugin's cache_dir", sdk.ErrFailedPrecondition, err)
	}
	return filepath.Join(d, "lemctl", "models"), nil
}

// FindVocab returns the GPT-2 vocabulary files: in dir when set, else in the set-up folders.
func FindVocab(dir string) (synth.Vocab, error) {
	var dirs []string
	if dir != "" {
		dirs = []string{dir}
	} else {
		for _, d := range model.ThirdPartyDirs() {
			dirs = append(dirs, filepath.Join(d, "gpt2"))
		}
	}
	for _, d := range dirs {
		v := synth.Vocab{EncoderJSON: filepath.Join(d, "encoder.json"), VocabBPE: filepath.Join(d, "vocab.bpe")}
		_, e1 := os.Stat(v.EncoderJSON)
		_, e2 := os.Stat(v.VocabBPE)
		if e1 == nil && e2 == nil {
			return v, nil
		}
	}
	return synth.Vocab{}, fmt.Errorf("%w: the GPT-2 vocabulary (encoder.json and vocab.bpe) that synthetic models ship is not in %s; run `make setup` in the lemctl source tree or set the onnx plugin's vocab_dir",
		sdk.ErrFailedPrecondition, strings.Join(dirs, ", "))
}

// dirFor returns the model directory of a reference, generating a synthetic model on first use.
func (l *Loader) dirFor(r Ref) (dir string, generated bool, err error) {
	if r.Preset == "" {
		abs, err := filepath.Abs(r.Dir)
		if err != nil {
			return "", false, fmt.Errorf("%w: model directory %q: %v", sdk.ErrInvalidArgument, r.Dir, err)
		}
		return abs, false, nil
	}
	l.mu.Lock()
	s := l.settings
	l.mu.Unlock()
	cache := s.CacheDir
	if cache == "" {
		if cache, err = DefaultCacheDir(); err != nil {
			return "", false, err
		}
	}
	vocab, err := FindVocab(s.VocabDir)
	if err != nil {
		return "", false, err
	}
	p, _ := synth.Lookup(r.Preset)
	dir, generated, err = synth.Ensure(cache, p, r.Seed, vocab)
	if errors.Is(err, synth.ErrCacheNotWritable) {
		return "", false, fmt.Errorf("%w: %v (set the onnx plugin's cache_dir to a writable folder)", sdk.ErrFailedPrecondition, err)
	}
	return dir, generated, err
}

// stamp fingerprints files by size and modification time.
func stamp(files []string) string {
	var sb strings.Builder
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			return ""
		}
		fmt.Fprintf(&sb, "%s:%d:%d;", f, st.Size(), st.ModTime().UnixNano())
	}
	return sb.String()
}

// Resolve implements sdk.Loader.
func (l *Loader) Resolve(ctx context.Context, ref string) (*sdk.Artifact, error) {
	e, err := l.resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	a := *e.art
	return &a, nil
}

// resolve returns the cache entry of ref, resolving it when it is missing or its files changed.
func (l *Loader) resolve(ctx context.Context, ref string) (*entry, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	if e, ok := l.resolved[ref]; ok && e.stamp != "" && e.stamp == stamp(e.art.Files) {
		l.mu.Unlock()
		return e, nil
	}
	l.mu.Unlock()
	dir, generated, err := l.dirFor(r)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	in, err := model.Inspect(dir)
	if err != nil {
		return nil, err
	}
	tk, err := tokenizer.Load(in.TokenizerFiles)
	if err != nil {
		return nil, err
	}
	sum, err := in.SHA256()
	if err != nil {
		return nil, err
	}
	a := artifact(ref, in, sum, tk)
	if r.Preset != "" {
		a.Metadata["cache"] = map[bool]string{true: "generated", false: "hit"}[generated]
	}
	e := &entry{art: a, tk: tk, stamp: stamp(a.Files)}
	l.mu.Lock()
	l.resolved[ref] = e
	l.mu.Unlock()
	return e, nil
}

// artifact builds the sdk.Artifact of an inspected model directory.
func artifact(ref string, in *model.Info, sum string, tk *tokenizer.Tokenizer) *sdk.Artifact {
	c := in.Config
	nonEmb, flops := c.FLOPs(in.Parameters)
	a := &sdk.Artifact{
		Reference:              ref,
		Path:                   in.ModelPath,
		Files:                  in.Files(),
		Format:                 "onnx",
		SHA256:                 sum,
		Architecture:           c.ModelType,
		DType:                  in.DType,
		Synthetic:              c.Synthetic != nil,
		Parameters:             in.Parameters,
		NonEmbeddingParameters: nonEmb,
		FLOPs:                  flops,
		Layers:                 c.Layers,
		Hidden:                 c.Hidden,
		Heads:                  c.Heads,
		KV:                     sdk.KVLayout{Layers: c.Layers, KVHeads: c.KVHeads, HeadDim: c.HeadDim},
		VocabSize:              c.Vocab,
		ContextLength:          c.ContextLength,
		EOSTokenIDs:            append([]int32(nil), c.EOSTokenIDs...),
		BOSTokenID:             c.BOSTokenID,
		PadTokenID:             c.PadTokenID,
		Tokenizer: sdk.TokenizerInfo{
			Kind:      "byte-level-bpe",
			Files:     append([]string(nil), in.TokenizerFiles...),
			VocabSize: tk.VocabSize(),
		},
		Metadata: map[string]string{
			"model_dir":    in.Dir,
			"opset":        strconv.FormatInt(in.Opset, 10),
			"producer":     in.Producer,
			"position_ids": strconv.FormatBool(in.HasPositionIDs),
			"tied_head":    strconv.FormatBool(c.TiedHead),
			"inputs":       strconv.Itoa(len(in.Inputs)),
			"outputs":      strconv.Itoa(len(in.Outputs)),
			// Weight storage: FLOPs stay the model's arithmetic; these say what it reads.
			"precision":       in.Precision,
			"quant_scheme":    in.QuantScheme,
			"weight_bytes":    strconv.FormatInt(in.WeightBytes, 10),
			"bytes_per_token": strconv.FormatInt(in.BytesPerToken, 10),
		},
	}
	if s := c.Synthetic; s != nil {
		a.Metadata["preset"] = s.Preset
		a.Metadata["seed"] = strconv.FormatUint(s.Seed, 10)
		a.Metadata["generator_version"] = strconv.Itoa(s.GeneratorVersion)
	}
	return a
}

// tokenizerFor resolves ref and returns its tokenizer.
func (l *Loader) tokenizerFor(ctx context.Context, ref string) (*tokenizer.Tokenizer, error) {
	e, err := l.resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	return e.tk, nil
}

// Tokenize implements sdk.Loader. Special tokens written in the text are plain text.
func (l *Loader) Tokenize(ctx context.Context, ref string, texts []string) ([][]int32, error) {
	tk, err := l.tokenizerFor(ctx, ref)
	if err != nil {
		return nil, err
	}
	out := make([][]int32, len(texts))
	for i, s := range texts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out[i] = tk.Encode(s)
	}
	return out, nil
}

// Detokenize implements sdk.Loader. Ids outside the vocabulary are an error naming them.
func (l *Loader) Detokenize(ctx context.Context, ref string, ids [][]int32) ([]string, error) {
	tk, err := l.tokenizerFor(ctx, ref)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ids))
	for i, seq := range ids {
		s, err := tk.Decode(seq)
		if err != nil {
			return nil, fmt.Errorf("detokenize text %d: %w", i, err)
		}
		out[i] = s
	}
	return out, nil
}
