package synth

import (
	"fmt"
	"sort"
	"strings"
)

// GeneratorVersion is part of every cache key. Bump it whenever the graph, the weight
// initialisation or any written file changes, so stale cached models are never reused.
const GeneratorVersion = 3

// Opset is the ONNX operator set the generated graphs use.
const Opset = 17

// irVersion is the ONNX IR version matching opset 17.
const irVersion = 8

// Arch values.
const (
	ArchGPT2  = "gpt2"
	ArchLlama = "llama"
)

// Preset is the shape of a synthetic model.
type Preset struct {
	Name      string
	Arch      string // ArchGPT2 or ArchLlama
	Layers    int
	Hidden    int // d_model
	Heads     int // query heads
	KVHeads   int // key/value heads (== Heads for GPT-2)
	Inner     int // MLP hidden size
	Positions int // context length
	Vocab     int
	// Llama only.
	RopeTheta float64
	NormEps   float64
	Doc       string
	// Precision is how the matrices are stored (FP32 unless the name ends in -q8 or -q4).
	Precision Precision
	// Base is the name without the precision suffix.
	Base string
}

// HeadDim is Hidden / Heads.
func (p Preset) HeadDim() int { return p.Hidden / p.Heads }

// gpt2Vocab is the size of the GPT-2 BPE vocabulary every preset uses, so the real tokenizer
// works with every synthetic model.
const gpt2Vocab = 50257

// EOSTokenID is <|endoftext|> in the GPT-2 vocabulary: BOS and EOS of every preset.
const EOSTokenID = 50256

var presets = map[string]Preset{
	"gpt2-tiny": {
		Name: "gpt2-tiny", Arch: ArchGPT2, Layers: 2, Hidden: 64, Heads: 4, KVHeads: 4, Inner: 256,
		Positions: 128, Vocab: gpt2Vocab, NormEps: 1e-5,
		Doc: "GPT-2 architecture, 2 layers, d=64, 4 heads, 128 positions, full GPT-2 vocabulary (runs in seconds; for tests)",
	},
	"gpt2-124m": {
		Name: "gpt2-124m", Arch: ArchGPT2, Layers: 12, Hidden: 768, Heads: 12, KVHeads: 12, Inner: 3072,
		Positions: 1024, Vocab: gpt2Vocab, NormEps: 1e-5,
		Doc: "GPT-2 small shape: 12 layers, d=768, 12 heads, 1024 positions, tied head, 124,439,808 parameters (~500 MB float32)",
	},
	"llama-tiny": {
		Name: "llama-tiny", Arch: ArchLlama, Layers: 2, Hidden: 64, Heads: 4, KVHeads: 2, Inner: 176,
		Positions: 256, Vocab: gpt2Vocab, RopeTheta: 10000, NormEps: 1e-5,
		Doc: "Llama architecture (RMSNorm, rotary positions, SwiGLU, grouped-query attention 4 query / 2 KV heads, untied head), 2 layers, d=64, GPT-2 vocabulary",
	},
}

// Presets lists the preset names, sorted.
func Presets() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Lookup returns the named preset: a name from Presets, optionally with a precision suffix
// (-q8: int8, -q4: int4), e.g. gpt2-124m-q4.
func Lookup(name string) (Preset, bool) {
	base, q := splitPrecision(name)
	p, ok := presets[base]
	if !ok {
		return Preset{}, false
	}
	return p.WithPrecision(q), true
}

// WithPrecision returns the preset p stored at precision q (its name carries q's suffix).
func (p Preset) WithPrecision(q Precision) Preset {
	if p.Base == "" {
		p.Base = p.Name
	}
	p.Precision = q
	p.Name = p.Base + q.Suffix()
	return p
}

// PresetList is Presets joined for messages.
func PresetList() string {
	return strings.Join(Presets(), ", ") + " (each also as <preset>-q8 or <preset>-q4: int8 or int4 weights)"
}

// Parameters counts the parameters the preset's initialisers hold (a tied head once).
func (p Preset) Parameters() int64 {
	var n int64
	for _, w := range p.weights() {
		if w.alias {
			continue
		}
		n += w.elements()
	}
	return n
}

// dirName is the cache folder name: preset (with its precision suffix), seed and generator
// version.
func (p Preset) dirName(seed uint64) string {
	return fmt.Sprintf("%s-s%d-g%d", p.Name, seed, GeneratorVersion)
}
