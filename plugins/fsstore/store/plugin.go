package store

import (
	"context"

	"github.com/lemctl/lemctl/sdk"
)

// Name and Version identify the plugin.
const (
	Name    = "fsstore"
	Version = "0.1.0"
)

// NewPlugin returns the fsstore plugin: a repository rooted at the `path` key (default
// "results"; lemctl passes --results-dir there).
func NewPlugin() *sdk.Plugin {
	s := New("results")
	return &sdk.Plugin{
		Name:        Name,
		Version:     Version,
		Description: "results as files: raw/<exp>/process_<rank>.json, aggregated/<exp>.json, runs/<exp>/manifest.json",
		Schema: []sdk.ConfigKey{{Key: "path", Type: sdk.TypeString, Default: "results",
			Doc: "results root directory; lemctl passes --results-dir here"}},
		Configure: func(_ context.Context, cfg sdk.Config) ([]sdk.ConfigError, error) {
			if cfg.String("path") == "" {
				return []sdk.ConfigError{{Key: "path", Message: "must not be empty", Valid: "a directory path"}}, nil
			}
			s.SetRoot(cfg.String("path"))
			return nil, nil
		},
		Repository: s,
	}
}
