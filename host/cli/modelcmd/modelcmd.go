// Package modelcmd is `lemctl model`: inspect a model reference and tokenize text with it,
// through the loader plugin (onnx by default), exactly as a run would resolve it.
package modelcmd

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/cliutil/render"
	"github.com/lemctl/lemctl/host/discovery"
	"github.com/lemctl/lemctl/sdk"
)

// NewCommand builds `lemctl model` with inspect and tokenize.
func NewCommand(f *cliutil.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "model", Short: "Inspect models and tokenize text through the loader plugin"}
	var plugin string
	cmd.PersistentFlags().StringVar(&plugin, "plugin", "onnx", "loader plugin")
	cmd.AddCommand(NewCmdInspect(f, &plugin, nil), NewCmdTokenize(f, &plugin, nil))
	return cmd
}

// InspectOptions are `model inspect`'s.
type InspectOptions struct {
	F *cliutil.Factory
	// Plugin is the loader plugin (`model --plugin`).
	Plugin string
	Ref    string
	Output string
}

// NewCmdInspect builds `model inspect REF`; plugin is the parent's --plugin; runF, when not nil,
// runs instead of inspectRun (tests).
func NewCmdInspect(f *cliutil.Factory, plugin *string, runF func(*InspectOptions) error) *cobra.Command {
	opts := &InspectOptions{F: f}
	cmd := &cobra.Command{
		Use:   "inspect REF",
		Short: "Resolve a model reference (a directory or synthetic:<preset>[?seed=N]) and print the artifact",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Plugin, opts.Ref = *plugin, args[0]
			if runF != nil {
				return runF(opts)
			}
			return inspectRun(cmd.Context(), opts)
		},
	}
	render.OutputVar(cmd, &opts.Output)
	return cmd
}

func inspectRun(ctx context.Context, opts *InspectOptions) error {
	env := opts.F
	return withLoader(ctx, env, opts.Plugin, func(l sdk.Loader) error {
		a, err := l.Resolve(ctx, opts.Ref)
		if err != nil {
			return cliutil.Failed(fmt.Errorf("resolve %s: %w", opts.Ref, err))
		}
		if opts.Output == render.FormatJSON {
			return render.JSON(env.Out, artifactJSON(a))
		}
		writeArtifact(env.Out, a)
		return nil
	})
}

// TokenizeOptions are `model tokenize`'s.
type TokenizeOptions struct {
	F *cliutil.Factory
	// Plugin is the loader plugin (`model --plugin`).
	Plugin string
	Ref    string
	Text   string
	Output string
}

// NewCmdTokenize builds `model tokenize REF TEXT`; plugin is the parent's --plugin; runF, when
// not nil, runs instead of tokenizeRun (tests).
func NewCmdTokenize(f *cliutil.Factory, plugin *string, runF func(*TokenizeOptions) error) *cobra.Command {
	opts := &TokenizeOptions{F: f}
	cmd := &cobra.Command{
		Use:   "tokenize REF TEXT",
		Short: "Print the token ids of TEXT for the model REF",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Plugin, opts.Ref, opts.Text = *plugin, args[0], args[1]
			if runF != nil {
				return runF(opts)
			}
			return tokenizeRun(cmd.Context(), opts)
		},
	}
	render.OutputVar(cmd, &opts.Output)
	return cmd
}

func tokenizeRun(ctx context.Context, opts *TokenizeOptions) error {
	env := opts.F
	return withLoader(ctx, env, opts.Plugin, func(l sdk.Loader) error {
		ids, err := l.Tokenize(ctx, opts.Ref, []string{opts.Text})
		if err != nil {
			return cliutil.Failed(fmt.Errorf("tokenize with %s: %w", opts.Ref, err))
		}
		if opts.Output == render.FormatJSON {
			return render.JSON(env.Out, TokenizeJSON{Ref: opts.Ref, Text: opts.Text, TokenIDs: nonNil(ids[0]), Tokens: len(ids[0])})
		}
		s := make([]string, len(ids[0]))
		for i, id := range ids[0] {
			s[i] = fmt.Sprint(id)
		}
		_, err = fmt.Fprintln(env.Out, strings.Join(s, " "))
		return err
	})
}

func withLoader(ctx context.Context, env *cliutil.Factory, name string, f func(sdk.Loader) error) error {
	cat, err := env.Catalog(ctx, "")
	if err != nil {
		return cliutil.Usage(err)
	}
	c, err := cat.OpenConfigured(ctx, name, sdk.KindLoader, nil)
	if err != nil {
		if discovery.IsUsage(err) {
			return cliutil.Usagef("--plugin %s: %v", name, err)
		}
		return cliutil.Failed(err)
	}
	defer c.Close()
	return f(c.Loader())
}

func writeArtifact(w io.Writer, a *sdk.Artifact) {
	tw := render.NewTabWriter(w)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
	row("reference", a.Reference)
	row("path", a.Path)
	row("format", a.Format)
	row("sha256", a.SHA256)
	row("architecture", a.Architecture)
	row("synthetic", a.Synthetic)
	row("dtype", a.DType)
	if p := a.Metadata["precision"]; p != "" {
		row("precision", fmt.Sprintf("%s (quantisation: %s)", p, a.Metadata["quant_scheme"]))
		row("weight bytes / bytes read per token", a.Metadata["weight_bytes"]+" / "+a.Metadata["bytes_per_token"])
	}
	row("parameters", a.Parameters)
	row("non-embedding parameters", a.NonEmbeddingParameters)
	row("FLOPs per token at position t", fmt.Sprintf("%d + %d × t", a.FLOPs.PerToken, a.FLOPs.PerTokenPosition))
	row("layers / d_model / heads", fmt.Sprintf("%d / %d / %d", a.Layers, a.Hidden, a.Heads))
	row("KV cache", fmt.Sprintf("%d layers × %d KV heads × %d head dim", a.KV.Layers, a.KV.KVHeads, a.KV.HeadDim))
	row("vocabulary", a.VocabSize)
	row("context length", a.ContextLength)
	row("EOS ids", a.EOSTokenIDs)
	row("tokenizer", fmt.Sprintf("%s %v", a.Tokenizer.Kind, a.Tokenizer.Files))
	keys := make([]string, 0, len(a.Metadata))
	for k := range a.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		row("metadata."+k, a.Metadata[k])
	}
	tw.Flush()
}

// TokenizeJSON is what `model tokenize -o json` prints.
type TokenizeJSON struct {
	Ref      string  `json:"ref"`
	Text     string  `json:"text"`
	TokenIDs []int32 `json:"token_ids"`
	Tokens   int     `json:"tokens"`
}

// ArtifactJSON is what `model inspect -o json` prints: the loader's artifact with snake_case keys.
type ArtifactJSON struct {
	Reference              string        `json:"reference"`
	Path                   string        `json:"path"`
	Files                  []string      `json:"files"`
	Format                 string        `json:"format"`
	SHA256                 string        `json:"sha256"`
	Architecture           string        `json:"architecture"`
	DType                  string        `json:"dtype"`
	Synthetic              bool          `json:"synthetic"`
	Parameters             int64         `json:"parameters"`
	NonEmbeddingParameters int64         `json:"non_embedding_parameters"`
	FLOPs                  FLOPsJSON     `json:"flops"`
	Layers                 int           `json:"layers"`
	Hidden                 int           `json:"d_model"`
	Heads                  int           `json:"heads"`
	KV                     KVJSON        `json:"kv"`
	VocabSize              int           `json:"vocab_size"`
	ContextLength          int           `json:"context_length"`
	EOSTokenIDs            []int32       `json:"eos_token_ids"`
	BOSTokenID             int32         `json:"bos_token_id"`
	PadTokenID             int32         `json:"pad_token_id"`
	Tokenizer              TokenizerJSON `json:"tokenizer"`
	// Precision, QuantScheme, WeightBytes and BytesPerToken are the loader's metadata keys
	// precision, quant_scheme, weight_bytes and bytes_per_token ("" and 0 when it does not
	// report them): how the weights are stored and what decoding one token reads of them.
	Precision     string            `json:"precision"`
	QuantScheme   string            `json:"quant_scheme"`
	WeightBytes   int64             `json:"weight_bytes"`
	BytesPerToken int64             `json:"bytes_per_token"`
	Metadata      map[string]string `json:"metadata"`
}

// FLOPsJSON is the FLOPs of a token at position t: per_token + per_token_position × t.
type FLOPsJSON struct {
	PerToken         int64 `json:"per_token"`
	PerTokenPosition int64 `json:"per_token_position"`
}

// KVJSON is the KV cache layout.
type KVJSON struct {
	Layers  int `json:"layers"`
	KVHeads int `json:"kv_heads"`
	HeadDim int `json:"head_dim"`
}

// TokenizerJSON describes the tokenizer.
type TokenizerJSON struct {
	Kind      string   `json:"kind"`
	Files     []string `json:"files"`
	VocabSize int      `json:"vocab_size"`
}

func artifactJSON(a *sdk.Artifact) ArtifactJSON {
	md := a.Metadata
	if md == nil {
		md = map[string]string{}
	}
	return ArtifactJSON{
		Reference: a.Reference, Path: a.Path, Files: nonNilS(a.Files), Format: a.Format, SHA256: a.SHA256,
		Architecture: a.Architecture, DType: a.DType, Synthetic: a.Synthetic,
		Parameters: a.Parameters, NonEmbeddingParameters: a.NonEmbeddingParameters,
		FLOPs:  FLOPsJSON{PerToken: a.FLOPs.PerToken, PerTokenPosition: a.FLOPs.PerTokenPosition},
		Layers: a.Layers, Hidden: a.Hidden, Heads: a.Heads,
		KV:        KVJSON{Layers: a.KV.Layers, KVHeads: a.KV.KVHeads, HeadDim: a.KV.HeadDim},
		VocabSize: a.VocabSize, ContextLength: a.ContextLength,
		EOSTokenIDs: nonNil(a.EOSTokenIDs), BOSTokenID: a.BOSTokenID, PadTokenID: a.PadTokenID,
		Tokenizer: TokenizerJSON{Kind: a.Tokenizer.Kind, Files: nonNilS(a.Tokenizer.Files), VocabSize: a.Tokenizer.VocabSize},
		Precision: md["precision"], QuantScheme: md["quant_scheme"],
		WeightBytes: metaInt(md, "weight_bytes"), BytesPerToken: metaInt(md, "bytes_per_token"),
		Metadata: md,
	}
}

// metaInt parses an integer metadata value (0 when absent or not an integer).
func metaInt(md map[string]string, key string) int64 {
	n, _ := strconv.ParseInt(md[key], 10, 64)
	return n
}

func nonNil(v []int32) []int32 {
	if v == nil {
		return []int32{}
	}
	return v
}

func nonNilS(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}
