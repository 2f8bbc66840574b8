package openai

import (
	"context"

	"github.com/lemctl/lemctl/sdk"
)

// Name and Version of the plugin; the build may override Version with -ldflags -X.
const Name = "openai"

var Version = "0.1.0"

// New returns the openai plugin: loader and engine.
func New() *sdk.Plugin {
	l, e := NewLoader(), NewEngine()
	return &sdk.Plugin{
		Name:        Name,
		Version:     Version,
		Description: "models served over an OpenAI-compatible HTTP API (vLLM, lemctl serve, …): streamed completions or chat, timed per chunk",
		Capabilities: map[string]string{
			"apis":        APICompletions + "," + APIChat,
			"error_kinds": KindHTTP4xx + "," + KindHTTP429 + "," + KindHTTP5xx + "," + KindTimeout + "," + KindDroppedStream + "," + KindConnect + "," + KindEngine,
			"continuous":  "true",
		},
		Schema: Schema(),
		Configure: func(ctx context.Context, cfg sdk.Config) ([]sdk.ConfigError, error) {
			s, errs := ParseSettings(ctx, cfg)
			if len(errs) > 0 {
				return errs, nil
			}
			l.SetSettings(s)
			e.SetSettings(s)
			return nil, nil
		},
		Loader: l,
		Engine: e,
	}
}
