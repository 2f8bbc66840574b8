package openai

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/lemctl/lemctl/sdk"
)

// Configuration keys (one table for both kinds: [model] for the loader, [engine] for the engine).
const (
	KeyBaseURL        = "base_url"
	KeyModel          = "model"
	KeyAPI            = "api"
	KeyAPIKeyEnv      = "api_key_env"
	KeyRequestTimeout = "request_timeout"
	KeyReturnTokenIDs = "return_token_ids"
	KeyTokenizer      = "tokenizer"
)

// API values.
const (
	APICompletions = "completions"
	APIChat        = "chat"
)

// Tokenizer sources besides a directory.
const (
	TokenizerServer = "server"
	TokenizerNone   = "none"
	syntheticPrefix = "synthetic:"
)

// DefaultRequestTimeout bounds one request, its whole stream included.
const DefaultRequestTimeout = 10 * time.Minute

// Schema is the plugin's configuration schema.
func Schema() []sdk.ConfigKey {
	return []sdk.ConfigKey{
		{Key: KeyBaseURL, Type: sdk.TypeString,
			Doc: "the server's OpenAI API root, /v1 included, e.g. \"http://127.0.0.1:8000/v1\" (requests go to {base_url}/models, /completions, /chat/completions; /tokenize and /detokenize to the root without /v1). Required in [model]; in [engine], defaults to the one the loader resolved the model with"},
		{Key: KeyModel, Type: sdk.TypeString,
			Doc: "engine: the served model's name; default: model.ref when the loader is this plugin, else the only model {base_url}/models lists"},
		{Key: KeyAPI, Type: sdk.TypeString, Default: APICompletions, Enum: []string{APICompletions, APIChat},
			Doc: "engine: completions sends the prompt as is (token ids as an int array); chat sends it as one user message, so it needs the prompt's text"},
		{Key: KeyAPIKeyEnv, Type: sdk.TypeString,
			Doc: "name of an environment variable that holds the API key, sent as \"Authorization: Bearer\"; the key itself is never written in the configuration, results, logs or errors; absent: no key"},
		{Key: KeyRequestTimeout, Type: sdk.TypeDuration, Default: DefaultRequestTimeout.String(), Min: sdk.Bound(0.001), Max: sdk.Bound(86400),
			Doc: "bound on one request, its whole stream included, and on each call to the server's model list and tokenizer; a request past it is a failure of kind timeout"},
		{Key: KeyReturnTokenIDs, Type: sdk.TypeBool, Default: true,
			Doc: "ask for the generated token ids with vLLM's return_token_ids extension; when the server sends none, output tokens are counted from usage (or the tokenizer). Set false for a server that refuses unknown fields"},
		{Key: KeyTokenizer, Type: sdk.TypeString, Default: TokenizerServer,
			Doc: "loader (and the engine, to count tokens a server does not): \"server\" (its /tokenize and /detokenize), a model directory with tokenizer.json or vocab.json + merges.txt, synthetic:<preset> (the GPT-2 vocabulary every synthetic preset uses), or \"none\" (the host leaves prompts as text)"},
	}
}

// Settings are a validated configuration.
type Settings struct {
	BaseURL        string // without a trailing slash; "" when not configured
	Model          string
	API            string
	APIKeyEnv      string
	RequestTimeout time.Duration
	ReturnTokenIDs bool
	Tokenizer      string
	tokenizerSet   bool
}

// DefaultSettings are the settings of an unconfigured plugin.
func DefaultSettings() Settings {
	return Settings{API: APICompletions, RequestTimeout: DefaultRequestTimeout, ReturnTokenIDs: true, Tokenizer: TokenizerServer}
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ParseSettings turns a table the sdk validated against Schema into Settings.
func ParseSettings(_ context.Context, cfg sdk.Config) (Settings, []sdk.ConfigError) {
	s := DefaultSettings()
	var errs []sdk.ConfigError
	if cfg.Has(KeyBaseURL) {
		u, err := CheckBaseURL(cfg.String(KeyBaseURL))
		if err != nil {
			errs = append(errs, sdk.ConfigError{Key: KeyBaseURL, Message: err.Error(), Valid: "an http:// or https:// URL such as \"http://127.0.0.1:8000/v1\""})
		} else {
			s.BaseURL = u
		}
	}
	s.Model = cfg.String(KeyModel)
	if cfg.Has(KeyModel) && strings.TrimSpace(s.Model) == "" {
		errs = append(errs, sdk.ConfigError{Key: KeyModel, Message: "empty model name", Valid: "a model name the server lists at {base_url}/models"})
	}
	if cfg.Has(KeyAPI) {
		s.API = cfg.String(KeyAPI)
	}
	if cfg.Has(KeyAPIKeyEnv) {
		s.APIKeyEnv = cfg.String(KeyAPIKeyEnv)
		if !envName.MatchString(s.APIKeyEnv) {
			errs = append(errs, sdk.ConfigError{Key: KeyAPIKeyEnv, Message: fmt.Sprintf("%q is not an environment variable name (write the variable's name, never the key)", s.APIKeyEnv),
				Valid: "letters, digits and '_', not starting with a digit, e.g. \"OPENAI_API_KEY\""})
		}
	}
	if cfg.Has(KeyRequestTimeout) {
		s.RequestTimeout = cfg.Duration(KeyRequestTimeout)
	}
	if cfg.Has(KeyReturnTokenIDs) {
		s.ReturnTokenIDs = cfg.Bool(KeyReturnTokenIDs)
	}
	if cfg.Has(KeyTokenizer) {
		s.Tokenizer = strings.TrimSpace(cfg.String(KeyTokenizer))
		s.tokenizerSet = true
		if s.Tokenizer == "" {
			errs = append(errs, sdk.ConfigError{Key: KeyTokenizer, Message: "empty", Valid: tokenizerValid})
		} else if strings.HasPrefix(s.Tokenizer, syntheticPrefix) && strings.TrimPrefix(s.Tokenizer, syntheticPrefix) == "" {
			errs = append(errs, sdk.ConfigError{Key: KeyTokenizer, Message: fmt.Sprintf("%q names no preset", s.Tokenizer), Valid: tokenizerValid})
		}
	}
	return s, errs
}

const tokenizerValid = `"server", "none", a model directory with tokenizer.json or vocab.json + merges.txt, or synthetic:<preset>`

// CheckBaseURL validates a base URL and returns it without a trailing slash.
func CheckBaseURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", fmt.Errorf("%q is not a URL: %v", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("%q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return "", fmt.Errorf("%q has no host", raw)
	}
	if u.User != nil {
		return "", fmt.Errorf("a base URL with credentials in it is refused (name the key's environment variable in %s)", KeyAPIKeyEnv)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q: a base URL has no query or fragment", raw)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// rootURL is base without a trailing /v1: where vLLM serves /tokenize, /detokenize and /version.
func rootURL(base string) string {
	return strings.TrimSuffix(strings.TrimRight(base, "/"), "/v1")
}
