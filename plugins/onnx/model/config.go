package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/lemctl/lemctl/sdk"
)

// Config is what lemctl needs from a Hugging Face config.json (+ generation_config.json).
// Both naming families are understood: GPT-2's (n_layer, n_head, n_embd, n_positions) and the
// common one (num_hidden_layers, num_attention_heads, hidden_size, max_position_embeddings).
type Config struct {
	ModelType     string
	Layers        int
	Hidden        int // d_model
	Heads         int // query heads
	KVHeads       int // key/value heads (fewer than Heads with grouped-query attention)
	HeadDim       int
	Inner         int // MLP hidden size
	Vocab         int
	ContextLength int
	// TiedHead: the LM head is the token embedding (tie_word_embeddings, default true).
	TiedHead bool
	// LearnedPositions: the model has a position-embedding matrix of ContextLength × Hidden
	// (GPT-2 and its relatives), an embedding parameter like the token embedding.
	LearnedPositions bool
	EOSTokenIDs      []int32
	BOSTokenID       int32 // -1 when none
	PadTokenID       int32 // -1 when none
	// Synthetic is set for models lemctl generated (config.json's lemctl_synthetic).
	Synthetic *SyntheticInfo
}

// SyntheticInfo identifies a generated model.
type SyntheticInfo struct {
	Preset           string `json:"preset"`
	Seed             uint64 `json:"seed"`
	GeneratorVersion int    `json:"generator_version"`
}

// learnedPositionTypes are model types with a learned position-embedding matrix.
var learnedPositionTypes = map[string]bool{"gpt2": true, "gpt_bigcode": true, "gpt_neo": true, "opt": true, "biogpt": true}

// ReadConfig reads dir/config.json and, when present, dir/generation_config.json (whose
// eos/bos/pad ids win, as in transformers' generate). Errors name the file and the key, and
// wrap sdk.ErrInvalidArgument (or sdk.ErrNotFound when config.json is missing).
func ReadConfig(dir string) (*Config, error) {
	path := filepath.Join(dir, ConfigFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s: model directory has no config.json", sdk.ErrNotFound, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%w: %s is not valid JSON: %v", sdk.ErrInvalidArgument, path, err)
	}
	c := &Config{BOSTokenID: -1, PadTokenID: -1, TiedHead: true}
	c.ModelType, _ = m["model_type"].(string)
	bad := func(key, why string) error {
		return fmt.Errorf("%w: %s: %s %s", sdk.ErrInvalidArgument, path, key, why)
	}
	// intKey returns the first of keys present, as a positive integer.
	intKey := func(required bool, keys ...string) (int, error) {
		for _, k := range keys {
			v, ok := m[k]
			if !ok || v == nil {
				continue
			}
			f, ok := v.(float64)
			if !ok || f != math.Trunc(f) || f <= 0 || f > math.MaxInt32 {
				return 0, bad(k, fmt.Sprintf("must be a positive integer, got %v", v))
			}
			return int(f), nil
		}
		if required {
			return 0, bad(fmt.Sprintf("%q", keys), "is missing (one of these keys is required)")
		}
		return 0, nil
	}
	if c.Layers, err = intKey(true, "num_hidden_layers", "n_layer", "num_layers"); err != nil {
		return nil, err
	}
	if c.Hidden, err = intKey(true, "hidden_size", "n_embd", "d_model"); err != nil {
		return nil, err
	}
	if c.Heads, err = intKey(true, "num_attention_heads", "n_head", "num_heads"); err != nil {
		return nil, err
	}
	if c.Vocab, err = intKey(true, "vocab_size"); err != nil {
		return nil, err
	}
	if c.ContextLength, err = intKey(true, "max_position_embeddings", "n_positions", "n_ctx", "seq_length"); err != nil {
		return nil, err
	}
	if c.KVHeads, err = intKey(false, "num_key_value_heads", "n_head_kv", "num_kv_heads"); err != nil {
		return nil, err
	}
	if c.KVHeads == 0 {
		if mq, _ := m["multi_query"].(bool); mq {
			c.KVHeads = 1
		} else {
			c.KVHeads = c.Heads
		}
	}
	if c.Heads%c.KVHeads != 0 {
		return nil, bad("num_key_value_heads", fmt.Sprintf("(%d) must divide the number of attention heads (%d)", c.KVHeads, c.Heads))
	}
	if c.HeadDim, err = intKey(false, "head_dim"); err != nil {
		return nil, err
	}
	if c.HeadDim == 0 {
		if c.Hidden%c.Heads != 0 {
			return nil, bad("hidden_size", fmt.Sprintf("(%d) is not a multiple of the number of heads (%d) and head_dim is not set", c.Hidden, c.Heads))
		}
		c.HeadDim = c.Hidden / c.Heads
	}
	if c.Inner, err = intKey(false, "intermediate_size", "n_inner", "ffn_dim"); err != nil {
		return nil, err
	}
	if c.Inner == 0 {
		c.Inner = 4 * c.Hidden
	}
	if v, ok := m["tie_word_embeddings"]; ok {
		b, isBool := v.(bool)
		if !isBool {
			return nil, bad("tie_word_embeddings", fmt.Sprintf("must be true or false, got %v", v))
		}
		c.TiedHead = b
	}
	c.LearnedPositions = learnedPositionTypes[c.ModelType]
	if err := c.readTokenIDs(m, path); err != nil {
		return nil, err
	}
	if s, ok := m["lemctl_synthetic"]; ok {
		b, _ := json.Marshal(s)
		var si SyntheticInfo
		if err := json.Unmarshal(b, &si); err != nil || si.Preset == "" {
			return nil, bad("lemctl_synthetic", "must be {preset, seed, generator_version}")
		}
		c.Synthetic = &si
	}
	gpath := filepath.Join(dir, GenConfigFile)
	if graw, err := os.ReadFile(gpath); err == nil {
		var g map[string]any
		if err := json.Unmarshal(graw, &g); err != nil {
			return nil, fmt.Errorf("%w: %s is not valid JSON: %v", sdk.ErrInvalidArgument, gpath, err)
		}
		if err := c.readTokenIDs(g, gpath); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", gpath, err)
	}
	for _, id := range c.EOSTokenIDs {
		if int(id) >= c.Vocab {
			return nil, bad("eos_token_id", fmt.Sprintf("%d is outside the vocabulary (size %d)", id, c.Vocab))
		}
	}
	return c, nil
}

// readTokenIDs sets the ids present in m (an int, a list of ints for eos, or null).
func (c *Config) readTokenIDs(m map[string]any, path string) error {
	one := func(key string, v any) (int32, error) {
		f, ok := v.(float64)
		if !ok || f != math.Trunc(f) || f < 0 || f > math.MaxInt32 {
			return 0, fmt.Errorf("%w: %s: %s must be a non-negative integer, got %v", sdk.ErrInvalidArgument, path, key, v)
		}
		return int32(f), nil
	}
	if v, ok := m["eos_token_id"]; ok && v != nil {
		var ids []int32
		switch t := v.(type) {
		case []any:
			for _, x := range t {
				id, err := one("eos_token_id", x)
				if err != nil {
					return err
				}
				ids = append(ids, id)
			}
		default:
			id, err := one("eos_token_id", v)
			if err != nil {
				return err
			}
			ids = []int32{id}
		}
		c.EOSTokenIDs = ids
	}
	for key, dst := range map[string]*int32{"bos_token_id": &c.BOSTokenID, "pad_token_id": &c.PadTokenID} {
		if v, ok := m[key]; ok && v != nil {
			id, err := one(key, v)
			if err != nil {
				return err
			}
			*dst = id
		}
	}
	return nil
}

// EmbeddingParameters counts the input-embedding parameters: the token embedding, plus the
// position embedding when it is learned.
func (c *Config) EmbeddingParameters() int64 {
	n := int64(c.Vocab) * int64(c.Hidden)
	if c.LearnedPositions {
		n += int64(c.ContextLength) * int64(c.Hidden)
	}
	return n
}

// HeadParameters counts the LM head's parameters (vocab × d_model), tied or not.
func (c *Config) HeadParameters() int64 { return int64(c.Vocab) * int64(c.Hidden) }

// FLOPs returns the docs/methodology.md coefficients for a model with params parameters (counted
// from the initialisers, a tied head once): PerToken = 2 × (non-embedding + LM head),
// PerTokenPosition = 4 × layers × d_model. Non-embedding parameters exclude the input
// embeddings and the LM head, so the head is counted exactly once per token, tied or not.
func (c *Config) FLOPs(params int64) (nonEmbedding int64, f sdk.FLOPsCoefficients) {
	nonEmbedding = params - c.EmbeddingParameters()
	if !c.TiedHead {
		nonEmbedding -= c.HeadParameters()
	}
	f.PerToken = 2 * (nonEmbedding + c.HeadParameters())
	f.PerTokenPosition = 4 * int64(c.Layers) * int64(c.Hidden)
	return nonEmbedding, f
}
