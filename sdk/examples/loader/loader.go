package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/lemctl/lemctl/sdk"
)

// The plugin's identity. The Makefile builds this directory as lem-plugin-example-loader.
const (
	pluginName    = "example-loader"
	pluginVersion = "0.1.0"
)

// Configuration keys: the declared shape of every model this loader resolves.
const (
	keyLayers  = "layers"
	keyHidden  = "hidden"
	keyHeads   = "heads"
	keyContext = "context_length"
)

// The byte tokenizer: ids 0–255 are the bytes of the text, 256 is end-of-sequence.
const (
	eosID     = 256
	vocabSize = 257
)

// scheme is the only kind of reference this loader resolves.
const scheme = "example:"

// validForm names the valid references in error messages.
const validForm = `"example:<name>" with a name of lower-case letters, digits, '.', '_' or '-' (e.g. "example:tiny")`

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

func schema() []sdk.ConfigKey {
	return []sdk.ConfigKey{
		{Key: keyLayers, Type: sdk.TypeInt, Default: 2, Min: sdk.Bound(1), Max: sdk.Bound(256),
			Doc: "transformer layers of the declared model shape"},
		{Key: keyHidden, Type: sdk.TypeInt, Default: 64, Min: sdk.Bound(1), Max: sdk.Bound(65536),
			Doc: "hidden size (d_model) of the declared model shape; a multiple of heads"},
		{Key: keyHeads, Type: sdk.TypeInt, Default: 4, Min: sdk.Bound(1), Max: sdk.Bound(1024),
			Doc: "attention heads of the declared model shape"},
		{Key: keyContext, Type: sdk.TypeInt, Default: 512, Min: sdk.Bound(1), Max: sdk.Bound(1 << 20),
			Doc: "context length (positions) of the declared model shape"},
	}
}

// shape is a GPT-2-style decoder: learned position embeddings, a tied LM head.
type shape struct {
	Layers, Hidden, Heads, Context, Vocab int
}

// counts returns the parameter counts and FLOPs coefficients of s (docs/methodology.md): per layer
// 12·d² + 13·d parameters (attention 4·d² + 4·d, MLP 8·d² + 5·d, two layer norms 4·d), a final
// layer norm, token and position embeddings; the tied head is counted once in the parameters and
// once more in the FLOPs, because it is a matmul.
func (s shape) counts() (params, nonEmbedding int64, flops sdk.FLOPsCoefficients) {
	d, l := int64(s.Hidden), int64(s.Layers)
	tokenEmb := int64(s.Vocab) * d
	posEmb := int64(s.Context) * d
	nonEmbedding = l*(12*d*d+13*d) + 2*d
	params = tokenEmb + posEmb + nonEmbedding
	head := tokenEmb
	flops = sdk.FLOPsCoefficients{PerToken: 2 * (nonEmbedding + head), PerTokenPosition: 4 * l * d}
	return params, nonEmbedding, flops
}

// loader is the example loader.
type loader struct {
	mu    sync.Mutex
	shape shape
}

// newPlugin is the plugin factory main serves.
func newPlugin() *sdk.Plugin {
	l := &loader{shape: shape{Layers: 2, Hidden: 64, Heads: 4, Context: 512, Vocab: vocabSize}}
	return &sdk.Plugin{
		Name:        pluginName,
		Version:     pluginVersion,
		Description: `example loader: "example:<name>" references to a synthetic model of a declared shape, byte tokenizer`,
		Schema:      schema(),
		Configure:   l.configure,
		Loader:      l,
	}
}

func (l *loader) configure(_ context.Context, cfg sdk.Config) ([]sdk.ConfigError, error) {
	s := shape{Layers: cfg.Int(keyLayers), Hidden: cfg.Int(keyHidden), Heads: cfg.Int(keyHeads), Context: cfg.Int(keyContext), Vocab: vocabSize}
	if s.Hidden%s.Heads != 0 {
		return []sdk.ConfigError{{Key: keyHeads, Message: fmt.Sprintf("%d heads do not divide hidden size %d", s.Heads, s.Hidden),
			Valid: "a divisor of hidden"}}, nil
	}
	l.mu.Lock()
	l.shape = s
	l.mu.Unlock()
	return nil, nil
}

// parse checks a reference and returns its name.
func parse(ref string) (string, error) {
	name, ok := strings.CutPrefix(ref, scheme)
	if !ok {
		return "", fmt.Errorf("reference %q: the example loader resolves only %s: %w", ref, validForm, sdk.ErrInvalidArgument)
	}
	if !nameRE.MatchString(name) {
		return "", fmt.Errorf("reference %q: bad name %q; want %s: %w", ref, name, validForm, sdk.ErrInvalidArgument)
	}
	return name, nil
}

// Resolve describes the model a reference names. Nothing is read or written: the artifact is
// synthetic, and its sha256 is that of its description, so it is stable for a name and shape.
func (l *loader) Resolve(_ context.Context, ref string) (*sdk.Artifact, error) {
	name, err := parse(ref)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	s := l.shape
	l.mu.Unlock()
	params, nonEmb, flops := s.counts()
	desc := fmt.Sprintf("%s/%s name=%s layers=%d hidden=%d heads=%d context=%d vocab=%d",
		pluginName, pluginVersion, name, s.Layers, s.Hidden, s.Heads, s.Context, s.Vocab)
	sum := sha256.Sum256([]byte(desc))
	return &sdk.Artifact{
		Reference:              ref,
		Path:                   ref,
		Format:                 "example",
		SHA256:                 hex.EncodeToString(sum[:]),
		Architecture:           "gpt2",
		DType:                  "float32",
		Synthetic:              true,
		Parameters:             params,
		NonEmbeddingParameters: nonEmb,
		FLOPs:                  flops,
		Layers:                 s.Layers,
		Hidden:                 s.Hidden,
		Heads:                  s.Heads,
		KV:                     sdk.KVLayout{Layers: s.Layers, KVHeads: s.Heads, HeadDim: s.Hidden / s.Heads},
		VocabSize:              s.Vocab,
		ContextLength:          s.Context,
		EOSTokenIDs:            []int32{eosID},
		BOSTokenID:             -1,
		PadTokenID:             -1,
		Tokenizer:              sdk.TokenizerInfo{Kind: "byte", VocabSize: s.Vocab},
		Metadata:               map[string]string{"name": name, "generator": pluginName + " " + pluginVersion, "description": desc},
	}, nil
}

// Tokenize returns one id per byte of each text: exact, so the host can build prompts of an
// exact length and count input tokens.
func (l *loader) Tokenize(_ context.Context, ref string, texts []string) ([][]int32, error) {
	if _, err := parse(ref); err != nil {
		return nil, fmt.Errorf("tokenize: %w", err)
	}
	out := make([][]int32, len(texts))
	for i, t := range texts {
		ids := make([]int32, len(t))
		for j := 0; j < len(t); j++ {
			ids[j] = int32(t[j])
		}
		out[i] = ids
	}
	return out, nil
}

// Detokenize inverts Tokenize. The end-of-sequence id is a special token and is left out; ids
// outside the vocabulary are ErrInvalidArgument. Bytes that are not valid UTF-8 (a generated
// sequence may cut a character) become U+FFFD, since text crosses the RPC as UTF-8.
func (l *loader) Detokenize(_ context.Context, ref string, ids [][]int32) ([]string, error) {
	if _, err := parse(ref); err != nil {
		return nil, fmt.Errorf("detokenize: %w", err)
	}
	out := make([]string, len(ids))
	for i, seq := range ids {
		var b strings.Builder
		for _, id := range seq {
			switch {
			case id >= 0 && id < eosID:
				b.WriteByte(byte(id))
			case id == eosID:
			default:
				return nil, fmt.Errorf("detokenize text %d: id %d outside the vocabulary [0, %d): %w", i, id, vocabSize, sdk.ErrInvalidArgument)
			}
		}
		out[i] = strings.ToValidUTF8(b.String(), "\uFFFD")
	}
	return out, nil
}
