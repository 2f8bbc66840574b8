package model_test

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/plugins/onnx/model"
	"github.com/lemctl/lemctl/sdk"
)

func TestReadConfig(t *testing.T) {
	for _, tc := range []struct {
		dir  string
		want model.Config
	}{
		{"gpt2", model.Config{ModelType: "gpt2", Layers: 12, Hidden: 768, Heads: 12, KVHeads: 12, HeadDim: 64, Inner: 3072,
			Vocab: 50257, ContextLength: 1024, TiedHead: true, LearnedPositions: true, EOSTokenIDs: []int32{50256}, BOSTokenID: 50256, PadTokenID: -1}},
		// generation_config.json's ids win over config.json's.
		{"llama", model.Config{ModelType: "llama", Layers: 16, Hidden: 2048, Heads: 32, KVHeads: 8, HeadDim: 64, Inner: 8192,
			Vocab: 128256, ContextLength: 131072, TiedHead: true, EOSTokenIDs: []int32{128001, 128008, 128009}, BOSTokenID: 128000, PadTokenID: 128004}},
		{"qwen-list-eos", model.Config{ModelType: "qwen2", Layers: 2, Hidden: 64, Heads: 4, KVHeads: 4, HeadDim: 16, Inner: 256,
			Vocab: 1000, ContextLength: 512, EOSTokenIDs: []int32{7, 9}, BOSTokenID: -1, PadTokenID: -1}},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			got, err := model.ReadConfig(filepath.Join("testdata", "configs", tc.dir))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("ReadConfig =\n%+v\nwant\n%+v", *got, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		dir  string
		is   error
		want string
	}{
		{"bad-kv", sdk.ErrInvalidArgument, "num_key_value_heads"},
		{"bad-tied", sdk.ErrInvalidArgument, "tie_word_embeddings must be true or false"},
		{"missing", sdk.ErrNotFound, "no config.json"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			_, err := model.ReadConfig(filepath.Join("testdata", "configs", tc.dir))
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v; want %v mentioning %q", err, tc.is, tc.want)
			}
		})
	}
}

func TestFLOPs(t *testing.T) {
	gpt2, err := model.ReadConfig(filepath.Join("testdata", "configs", "gpt2"))
	if err != nil {
		t.Fatal(err)
	}
	nonEmb, f := gpt2.FLOPs(124_439_808)
	if nonEmb != 85_056_000 || f.PerToken != 2*(85_056_000+38_597_376) || f.PerTokenPosition != 4*12*768 {
		t.Errorf("gpt2: non-embedding %d, %+v", nonEmb, f)
	}
	// Untied head: the head is its own matrix, counted once as the head, not as non-embedding.
	q, _ := model.ReadConfig(filepath.Join("testdata", "configs", "qwen-list-eos"))
	nonEmb, f = q.FLOPs(1000*64*2 + 5000)
	if nonEmb != 5000 || f.PerToken != 2*(5000+64000) {
		t.Errorf("untied: non-embedding %d, %+v", nonEmb, f)
	}
}
