package engine

import (
	"context"
	"fmt"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/lemctl/lemctl/plugins/onnx/loader"
	"github.com/lemctl/lemctl/sdk"
)

// Config keys of the onnx plugin that concern the engine. library_path belongs to the loader's
// schema (loader.KeyLibraryPath); the engine reads it too.
const (
	KeyProvider          = "provider"
	KeyThreads           = "threads"
	KeyInterOpThreads    = "inter_op_threads"
	KeyGraphOptimization = "graph_optimization"
	KeyMaxBatchSize      = "max_batch_size"
)

// Execution providers.
const (
	ProviderAuto = "auto"
	ProviderCPU  = "cpu"
	ProviderCUDA = "cuda"
)

// graphLevels maps graph_optimization values to ONNX Runtime's levels.
var graphLevels = map[string]ort.GraphOptimizationLevel{
	"disable":  ort.GraphOptimizationLevelDisableAll,
	"basic":    ort.GraphOptimizationLevelEnableBasic,
	"extended": ort.GraphOptimizationLevelEnableExtended,
	"all":      ort.GraphOptimizationLevelEnableAll,
}

// Settings are the engine's configuration.
type Settings struct {
	// LibraryPath is the ONNX Runtime library ("" = model.FindLibrary's search).
	LibraryPath string
	// Provider is ProviderAuto (the load request's device decides), ProviderCPU or ProviderCUDA.
	Provider string
	// Threads is the intra-op thread count (0: ONNX Runtime's default, one per physical core).
	// A load request's Threads wins.
	Threads int
	// InterOpThreads is the inter-op thread count (0: ONNX Runtime's default).
	InterOpThreads int
	// GraphOptimization is one of disable, basic, extended, all.
	GraphOptimization string
	// MaxBatchSize caps the prompts of one Generate (0: no cap).
	MaxBatchSize int
}

// DefaultSettings are the settings of an engine that was never configured.
func DefaultSettings() Settings {
	return Settings{Provider: ProviderAuto, GraphOptimization: "all"}
}

// Schema lists the engine's config keys.
func Schema() []sdk.ConfigKey {
	return []sdk.ConfigKey{
		{Key: KeyProvider, Type: sdk.TypeString, Default: ProviderAuto, Enum: []string{ProviderAuto, ProviderCPU, ProviderCUDA},
			Doc: "execution provider: auto follows the worker's device (cuda devices use the CUDA provider); cuda fails with the reason when ONNX Runtime's CUDA provider or its libraries are missing — never a silent CPU fallback"},
		{Key: KeyThreads, Type: sdk.TypeInt, Default: 0, Min: sdk.Bound(0), Max: sdk.Bound(1024),
			Doc: "intra-op threads (0: ONNX Runtime's default, one per physical core); the launcher's per-worker thread split wins"},
		{Key: KeyInterOpThreads, Type: sdk.TypeInt, Default: 0, Min: sdk.Bound(0), Max: sdk.Bound(1024),
			Doc: "inter-op threads (0: ONNX Runtime's default)"},
		{Key: KeyGraphOptimization, Type: sdk.TypeString, Default: "all", Enum: []string{"disable", "basic", "extended", "all"},
			Doc: "ONNX Runtime graph optimisation level"},
		{Key: KeyMaxBatchSize, Type: sdk.TypeInt, Default: 0, Min: sdk.Bound(0), Max: sdk.Bound(1 << 16),
			Doc: "largest batch one Generate accepts (0: no cap); a larger batch is an invalid-argument error"},
	}
}

// Configure applies the engine's keys (and library_path) from a table the sdk has validated
// against the plugin's schema. It only fails on values the schema cannot express.
func (e *Engine) Configure(_ context.Context, cfg sdk.Config) ([]sdk.ConfigError, error) {
	s := DefaultSettings()
	s.LibraryPath = cfg.String(loader.KeyLibraryPath)
	if cfg.Has(KeyProvider) {
		s.Provider = cfg.String(KeyProvider)
	}
	s.Threads = cfg.Int(KeyThreads)
	s.InterOpThreads = cfg.Int(KeyInterOpThreads)
	if cfg.Has(KeyGraphOptimization) {
		s.GraphOptimization = cfg.String(KeyGraphOptimization)
	}
	s.MaxBatchSize = cfg.Int(KeyMaxBatchSize)
	if err := s.check(); err != nil {
		return []sdk.ConfigError{*err}, nil
	}
	e.SetSettings(s)
	return nil, nil
}

// check reports the first invalid setting.
func (s Settings) check() *sdk.ConfigError {
	switch {
	case s.Provider != ProviderAuto && s.Provider != ProviderCPU && s.Provider != ProviderCUDA:
		return &sdk.ConfigError{Key: KeyProvider, Message: fmt.Sprintf("%q is not a provider", s.Provider), Valid: `one of ["auto","cpu","cuda"]`}
	case s.Threads < 0:
		return &sdk.ConfigError{Key: KeyThreads, Message: "must not be negative", Valid: "int ≥ 0"}
	case s.InterOpThreads < 0:
		return &sdk.ConfigError{Key: KeyInterOpThreads, Message: "must not be negative", Valid: "int ≥ 0"}
	case s.MaxBatchSize < 0:
		return &sdk.ConfigError{Key: KeyMaxBatchSize, Message: "must not be negative", Valid: "int ≥ 0"}
	}
	if _, ok := graphLevels[s.GraphOptimization]; !ok {
		return &sdk.ConfigError{Key: KeyGraphOptimization, Message: fmt.Sprintf("%q is not a level", s.GraphOptimization), Valid: `one of ["disable","basic","extended","all"]`}
	}
	return nil
}
