package onnx

import (
	"context"

	"github.com/lemctl/lemctl/plugins/onnx/engine"
	"github.com/lemctl/lemctl/plugins/onnx/loader"
	"github.com/lemctl/lemctl/plugins/onnx/model"
	"github.com/lemctl/lemctl/plugins/onnx/synth"
	"github.com/lemctl/lemctl/sdk"
)

// Version is the plugin's version; the build may override it with -ldflags -X.
var Version = "0.1.0"

// New returns the onnx plugin.
func New() *sdk.Plugin {
	l := loader.New()
	e := engine.New()
	return &sdk.Plugin{
		Name:        "onnx",
		Version:     Version,
		Description: "ONNX Runtime models: optimum export directories and synthetic GPT-2/Llama models (synthetic:<preset>[?seed=N])",
		Capabilities: map[string]string{
			"synthetic_presets": synth.PresetList(),
			"onnxruntime":       model.RequiredORTVersion,
			"tokenizer":         "byte-level-bpe",
		},
		Schema: append(loader.Schema(), engine.Schema()...),
		Configure: func(ctx context.Context, cfg sdk.Config) ([]sdk.ConfigError, error) {
			errs, err := l.Configure(ctx, cfg)
			if err != nil || len(errs) > 0 {
				return errs, err
			}
			return e.Configure(ctx, cfg)
		},
		Loader: l,
		Engine: e,
	}
}
