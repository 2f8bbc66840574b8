package main

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/plugintest"
)

func TestShapeCounts(t *testing.T) {
	tests := []struct {
		name                     string
		s                        shape
		params, nonEmb, perToken int64
		perPosition              int64
	}{
		// GPT-2 small: the figures of docs/methodology.md (124,439,808 parameters; 170 MFLOP
		// non-embedding + 77 MFLOP head per token; 4·12·768 per position).
		{"gpt2 small", shape{Layers: 12, Hidden: 768, Heads: 12, Context: 1024, Vocab: 50257},
			124_439_808, 85_056_000, 2 * (85_056_000 + 38_597_376), 36_864},
		{"example default", shape{Layers: 2, Hidden: 64, Heads: 4, Context: 512, Vocab: vocabSize},
			149_312, 100_096, 2 * (100_096 + 16_448), 512},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, n, f := tc.s.counts()
			if p != tc.params || n != tc.nonEmb || f.PerToken != tc.perToken || f.PerTokenPosition != tc.perPosition {
				t.Errorf("counts = %d, %d, %+v; want %d, %d, {%d %d}", p, n, f, tc.params, tc.nonEmb, tc.perToken, tc.perPosition)
			}
		})
	}
	// GPT-2 small at t = 1024 is ≈ 285 MFLOP per token.
	_, _, f := tests[0].s.counts()
	if got := f.At(1024); got < 284_000_000 || got > 286_000_000 {
		t.Errorf("GPT-2 small FLOPs at t=1024: %d, want ≈ 285 M", got)
	}
}

func TestResolve(t *testing.T) {
	l := newPlugin().Loader
	ctx := context.Background()
	tests := []struct {
		ref     string
		wantErr string // "" when it resolves
	}{
		{"example:tiny", ""},
		{"example:gpt-2.small_v1", ""},
		{"example:", "bad name"},
		{"example:Tiny", "bad name"},
		{"example:a/b", "bad name"},
		{"synthetic:tiny", `resolves only "example:<name>"`},
		{"/models/gpt2", `resolves only "example:<name>"`},
		{"", `resolves only "example:<name>"`},
	}
	for _, tc := range tests {
		t.Run(tc.ref, func(t *testing.T) {
			a, err := l.Resolve(ctx, tc.ref)
			if tc.wantErr != "" {
				if !errors.Is(err, sdk.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("Resolve(%q) = %v, want ErrInvalidArgument mentioning %q", tc.ref, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Path != tc.ref || a.Reference != tc.ref || a.Format != "example" || !a.Synthetic || len(a.SHA256) != 64 ||
				a.Parameters != 149_312 || a.VocabSize != vocabSize || !reflect.DeepEqual(a.EOSTokenIDs, []int32{eosID}) ||
				a.ContextLength != 512 || a.KV != (sdk.KVLayout{Layers: 2, KVHeads: 4, HeadDim: 16}) {
				t.Errorf("artifact %+v", a)
			}
		})
	}
	a1, _ := l.Resolve(ctx, "example:one")
	a1again, _ := l.Resolve(ctx, "example:one")
	a2, _ := l.Resolve(ctx, "example:two")
	if a1.SHA256 != a1again.SHA256 || a1.SHA256 == a2.SHA256 {
		t.Errorf("sha256 must be stable per name and differ between names: %s %s %s", a1.SHA256, a1again.SHA256, a2.SHA256)
	}
}

func TestConfiguredShape(t *testing.T) {
	p := newPlugin()
	ctx := context.Background()
	tests := []struct {
		name   string
		table  map[string]any
		errKey string
		check  func(a *sdk.Artifact) bool
	}{
		{"bigger", map[string]any{"layers": 4.0, "hidden": 128.0, "heads": 8.0, "context_length": 1024.0}, "",
			func(a *sdk.Artifact) bool {
				return a.Layers == 4 && a.Hidden == 128 && a.KV.HeadDim == 16 && a.ContextLength == 1024 && a.FLOPs.PerTokenPosition == 4*4*128
			}},
		{"heads must divide hidden", map[string]any{"hidden": 100.0, "heads": 8.0}, keyHeads, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, serrs := sdk.ValidateConfig(p.Schema, tc.table)
			if len(serrs) > 0 {
				t.Fatal(serrs)
			}
			errs, err := p.Configure(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if tc.errKey != "" {
				if len(errs) != 1 || errs[0].Key != tc.errKey {
					t.Errorf("errors %v, want one on %q", errs, tc.errKey)
				}
				return
			}
			a, err := p.Loader.Resolve(ctx, "example:x")
			if err != nil || len(errs) > 0 || !tc.check(a) {
				t.Errorf("artifact %+v, errors %v %v", a, errs, err)
			}
		})
	}
}

func TestTokenizer(t *testing.T) {
	l := newPlugin().Loader
	ctx := context.Background()
	texts := []string{"", "Hello", "  spaces\tand\nnewlines  ", "ünïcödé ✓", "\x00\xff"}
	ids, err := l.Tokenize(ctx, "example:tiny", texts)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ids[1], []int32{72, 101, 108, 108, 111}) || len(ids[0]) != 0 || len(ids[3]) != len("ünïcödé ✓") {
		t.Errorf("ids %v", ids)
	}
	back, err := l.Detokenize(ctx, "example:tiny", ids[:4])
	if err != nil || !reflect.DeepEqual(back, texts[:4]) {
		t.Errorf("round trip %q, %v", back, err)
	}
	tests := []struct {
		name    string
		ref     string
		ids     []int32
		want    string
		wantErr error
	}{
		{"eos left out", "example:tiny", []int32{'o', 'k', eosID}, "ok", nil},
		{"invalid utf-8 replaced", "example:tiny", []int32{'a', 0xff}, "a\uFFFD", nil},
		{"id above the vocabulary", "example:tiny", []int32{vocabSize}, "", sdk.ErrInvalidArgument},
		{"negative id", "example:tiny", []int32{-1}, "", sdk.ErrInvalidArgument},
		{"bad reference", "nope", []int32{'a'}, "", sdk.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := l.Detokenize(ctx, tc.ref, [][]int32{tc.ids})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("Detokenize: %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || got[0] != tc.want {
				t.Errorf("Detokenize = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if _, err := l.Tokenize(ctx, "example:Bad", texts); !errors.Is(err, sdk.ErrInvalidArgument) {
		t.Errorf("Tokenize with a bad reference: %v", err)
	}
}

func TestConformance(t *testing.T) {
	plugintest.Run(t, newPlugin(), plugintest.Options{
		Config:     map[string]any{"layers": 3.0},
		BadConfigs: []plugintest.BadConfig{{Table: map[string]any{"hidden": 30.0, "heads": 4.0}, Key: keyHeads}},
		Loader:     plugintest.LoaderOptions{Reference: "example:tiny"},
	})
}
