package loader

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/lemctl/lemctl/plugins/onnx/model"
	"github.com/lemctl/lemctl/sdk"
)

// Config keys of the onnx plugin that concern the loader (and, for library_path, the engine).
const (
	KeyLibraryPath = "library_path"
	KeyCacheDir    = "cache_dir"
	KeyVocabDir    = "vocab_dir"
)

// Schema lists the loader's config keys.
func Schema() []sdk.ConfigKey {
	return []sdk.ConfigKey{
		{Key: KeyLibraryPath, Type: sdk.TypeString, Default: "",
			Doc: "ONNX Runtime shared library (libonnxruntime.so, version " + model.RequiredORTVersion + "); empty: $" + model.LibraryEnv + ", then the `make setup` folder ($" + model.ThirdPartyEnv + "/" + model.LibraryRel + ", <plugin dir>/../../third_party/…)"},
		{Key: KeyCacheDir, Type: sdk.TypeString, Default: "",
			Doc: "folder for generated synthetic models; empty: <user cache dir>/lemctl/models"},
		{Key: KeyVocabDir, Type: sdk.TypeString, Default: "",
			Doc: "folder with the GPT-2 encoder.json and vocab.bpe that synthetic models ship; empty: the `make setup` folder's gpt2/"},
	}
}

// Configure checks the loader's keys and applies them to l. A library_path is opened and its
// version checked now, so a wrong ONNX Runtime is reported against the key that named it.
func (l *Loader) Configure(_ context.Context, cfg sdk.Config) ([]sdk.ConfigError, error) {
	var errs []sdk.ConfigError
	if p := cfg.String(KeyLibraryPath); p != "" {
		if _, err := model.CheckLibrary(p); err != nil {
			errs = append(errs, sdk.ConfigError{Key: KeyLibraryPath, Message: err.Error(),
				Valid: "a libonnxruntime.so of ONNX Runtime " + model.RequiredORTVersion + " (API " + fmt.Sprint(model.ORTAPIVersion) + ")"})
		}
	}
	cache := cfg.String(KeyCacheDir)
	if cache != "" {
		if st, err := os.Stat(cache); err == nil && !st.IsDir() {
			errs = append(errs, sdk.ConfigError{Key: KeyCacheDir, Message: cache + " exists and is not a folder", Valid: "a folder path (created when missing)"})
		}
	}
	vocab := cfg.String(KeyVocabDir)
	if vocab != "" {
		if _, err := FindVocab(vocab); err != nil {
			errs = append(errs, sdk.ConfigError{Key: KeyVocabDir, Message: fmt.Sprintf("%s lacks encoder.json or vocab.bpe", vocab), Valid: "a folder with the GPT-2 encoder.json and vocab.bpe (`make setup` puts them in third_party/gpt2)"})
		}
	}
	if len(errs) > 0 {
		return errs, nil
	}
	if cache != "" {
		abs, err := filepath.Abs(cache)
		if err != nil {
			return []sdk.ConfigError{{Key: KeyCacheDir, Message: err.Error()}}, nil
		}
		cache = abs
	}
	l.SetSettings(Settings{LibraryPath: cfg.String(KeyLibraryPath), CacheDir: cache, VocabDir: vocab})
	return nil, nil
}
