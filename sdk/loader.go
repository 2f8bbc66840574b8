package sdk

import "context"

// Loader resolves a model reference to a local artifact and tokenizes text for it. It never
// sends weights over the RPC: the artifact names files the engine opens itself.
//
// Tokenize and Detokenize take the same reference Resolve took; a loader may resolve it again or
// serve it from a cache.
type Loader interface {
	Resolve(ctx context.Context, ref string) (*Artifact, error)
	Tokenize(ctx context.Context, ref string, texts []string) ([][]int32, error)
	Detokenize(ctx context.Context, ref string, ids [][]int32) ([]string, error)
}

// Artifact is a resolved model.
type Artifact struct {
	Reference    string   // the reference as the user wrote it
	Path         string   // the model file (e.g. model.onnx) or directory
	Files        []string // every file that makes up the model (weights, external data, tokenizer)
	Format       string   // e.g. "onnx", or FormatServed
	SHA256       string   // sha256 of the model file (and external data, in order), hex
	Architecture string   // e.g. "gpt2", "llama"
	DType        string   // e.g. "float32"
	Synthetic    bool     // generated, not a trained model

	Parameters             int64 // all parameters, counted from the initialisers (a tied head once)
	NonEmbeddingParameters int64
	FLOPs                  FLOPsCoefficients

	Layers        int
	Hidden        int // d_model
	Heads         int
	KV            KVLayout
	VocabSize     int
	ContextLength int
	EOSTokenIDs   []int32 // empty when the model has none
	BOSTokenID    int32   // -1 when the model has none
	PadTokenID    int32   // -1 when the model has none

	Tokenizer TokenizerInfo
	// Metadata holds anything else the loader knows (generator version, seed, preset…).
	Metadata map[string]string
}

// FormatServed is the Format of a model that a server runs (Reference is its name there): no
// files, weights, hash or parameter count; the Metadata says where it is served and what the
// server reported.
const FormatServed = "served"

// FLOPsCoefficients give the forward-pass FLOPs (2 per multiply-add) to process one token at
// position t (1-based): PerToken + PerTokenPosition × t. PerToken is 2 × (non-embedding
// parameters + LM-head parameters); PerTokenPosition is 4 × layers × d_model (docs/methodology.md).
type FLOPsCoefficients struct {
	PerToken         int64
	PerTokenPosition int64
}

// At returns the FLOPs to process one token at 1-based position t.
func (f FLOPsCoefficients) At(t int) int64 { return f.PerToken + f.PerTokenPosition*int64(t) }

// Span returns the FLOPs to process the tokens at positions from..to inclusive (1-based).
func (f FLOPsCoefficients) Span(from, to int) int64 {
	if to < from {
		return 0
	}
	n := int64(to - from + 1)
	return f.PerToken*n + f.PerTokenPosition*(int64(from)+int64(to))*n/2
}

// KVLayout describes the key/value cache: one key and one value tensor per layer, each
// [batch, KVHeads, sequence, HeadDim].
type KVLayout struct {
	Layers  int
	KVHeads int
	HeadDim int
}

// TokenizerInfo says which tokenizer a model uses.
type TokenizerInfo struct {
	Kind      string   // e.g. "byte-level-bpe"
	Files     []string // tokenizer.json, or vocab.json + merges.txt
	VocabSize int
}
