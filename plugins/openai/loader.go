package openai

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/lemctl/lemctl/sdk"
)

// FormatServed is the Format of an artifact that is a served model, not files.
const FormatServed = sdk.FormatServed

// Metadata keys of a served artifact (besides what the server reports about the model).
const (
	MetaBaseURL   = "base_url"
	MetaTokenizer = "tokenizer"
	MetaServer    = "server_version"
)

// Loader is the sdk.Loader of served models: a reference is a model name the server lists.
type Loader struct {
	mu       sync.Mutex
	settings Settings
	client   *client
	tks      map[string]textTokenizer // by reference
}

// NewLoader returns a loader on the default settings.
func NewLoader() *Loader {
	return &Loader{settings: DefaultSettings(), tks: map[string]textTokenizer{}}
}

// SetSettings replaces the settings (Configure).
func (l *Loader) SetSettings(s Settings) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.client.close()
	l.settings, l.client, l.tks = s, nil, map[string]textTokenizer{}
}

// clientFor returns the loader's client, made on first use.
func (l *Loader) clientFor() (*client, Settings, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.settings
	if s.BaseURL == "" {
		return nil, s, fmt.Errorf("%w: the openai loader needs %s in [model] (the server's OpenAI API root, e.g. \"http://127.0.0.1:8000/v1\")", sdk.ErrFailedPrecondition, KeyBaseURL)
	}
	if l.client == nil {
		c, err := newClient(s, s.BaseURL)
		if err != nil {
			return nil, s, err
		}
		l.client = c
	}
	return l.client, s, nil
}

func checkRef(ref string) error {
	if strings.TrimSpace(ref) == "" {
		return fmt.Errorf("%w: empty model reference (valid: the name of a model the server lists at {base_url}/models)", sdk.ErrInvalidArgument)
	}
	return nil
}

// Resolve implements sdk.Loader: ref must be a model the server lists.
func (l *Loader) Resolve(ctx context.Context, ref string) (*sdk.Artifact, error) {
	if err := checkRef(ref); err != nil {
		return nil, err
	}
	c, s, err := l.clientFor()
	if err != nil {
		return nil, err
	}
	m, err := c.findModel(ctx, ref, "model.ref")
	if err != nil {
		return nil, err
	}
	tk, err := l.tokenizerFor(ctx, ref)
	if err != nil {
		return nil, err
	}
	meta := m.served()
	meta[MetaBaseURL] = c.base
	meta[MetaTokenizer] = s.Tokenizer
	if v := c.serverVersion(ctx); v != "" {
		meta[MetaServer] = v
	}
	a := &sdk.Artifact{
		Reference:     ref,
		Format:        FormatServed,
		ContextLength: m.contextLength(),
		BOSTokenID:    -1,
		PadTokenID:    -1,
		Metadata:      meta,
	}
	if tk != nil {
		a.Tokenizer = tk.Info()
		a.VocabSize = a.Tokenizer.VocabSize
		// A local tokenizer's files are part of what the run depends on.
		a.Files = append([]string(nil), a.Tokenizer.Files...)
	} else {
		a.Tokenizer = sdk.TokenizerInfo{Kind: TokenizerNone}
	}
	return a, nil
}

// tokenizerFor returns ref's tokenizer (nil for "none"), opened on first use.
func (l *Loader) tokenizerFor(_ context.Context, ref string) (textTokenizer, error) {
	l.mu.Lock()
	tk, ok := l.tks[ref]
	s := l.settings
	l.mu.Unlock()
	if ok {
		return tk, nil
	}
	var c *client
	if s.Tokenizer == TokenizerServer {
		var err error
		if c, _, err = l.clientFor(); err != nil {
			return nil, err
		}
	}
	tk, err := newTokenizer(s.Tokenizer, ref, c)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.tks[ref] = tk
	l.mu.Unlock()
	return tk, nil
}

// Tokenize implements sdk.Loader with the tokenizer the tokenizer key names; with "none" it is
// sdk.ErrUnimplemented, so the host sends the prompts as text.
func (l *Loader) Tokenize(ctx context.Context, ref string, texts []string) ([][]int32, error) {
	tk, err := l.usableTokenizer(ctx, ref)
	if err != nil {
		return nil, err
	}
	return tk.Encode(ctx, texts)
}

// Detokenize implements sdk.Loader.
func (l *Loader) Detokenize(ctx context.Context, ref string, ids [][]int32) ([]string, error) {
	tk, err := l.usableTokenizer(ctx, ref)
	if err != nil {
		return nil, err
	}
	return tk.Decode(ctx, ids)
}

func (l *Loader) usableTokenizer(ctx context.Context, ref string) (textTokenizer, error) {
	if err := checkRef(ref); err != nil {
		return nil, err
	}
	tk, err := l.tokenizerFor(ctx, ref)
	if err != nil {
		return nil, err
	}
	if tk == nil {
		return nil, fmt.Errorf("%w: %s = %q: this loader does not tokenize (name a tokenizer: %s)", sdk.ErrUnimplemented, KeyTokenizer, TokenizerNone, tokenizerValid)
	}
	return tk, nil
}
