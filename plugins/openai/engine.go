package openai

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/lemctl/lemctl/plugins/onnx/tokenizer"
	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/clock"
)

// Engine is the sdk.ContinuousEngine of a served model: every request goes to the server.
type Engine struct {
	mu       sync.Mutex
	settings Settings
	sess     *session
}

// session is what Load opened.
type session struct {
	c         *client
	model     string
	api       string
	returnIDs bool
	tk        textTokenizer // nil: none (counts come from the server)
}

var _ sdk.ContinuousEngine = (*Engine)(nil)

// NewEngine returns an engine on the default settings.
func NewEngine() *Engine { return &Engine{settings: DefaultSettings()} }

// SetSettings replaces the settings (Configure).
func (e *Engine) SetSettings(s Settings) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.settings = s
}

func (e *Engine) session() (*session, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sess == nil {
		return nil, fmt.Errorf("%w: no model loaded (call Load first)", sdk.ErrFailedPrecondition)
	}
	return e.sess, nil
}

// Load implements sdk.Engine: it checks that the server lists the model.
func (e *Engine) Load(ctx context.Context, req sdk.LoadRequest) (*sdk.LoadResult, error) {
	start := clock.Mono()
	e.mu.Lock()
	s, loaded := e.settings, e.sess != nil
	e.mu.Unlock()
	if loaded {
		return nil, fmt.Errorf("%w: a model is already loaded (Unload it first)", sdk.ErrFailedPrecondition)
	}
	a := req.Artifact
	served := a.Format == FormatServed
	base := s.BaseURL
	if base == "" && served {
		var err error
		if base, err = CheckBaseURL(a.Metadata[MetaBaseURL]); err != nil {
			return nil, fmt.Errorf("%w: the artifact's %s: %v", sdk.ErrInvalidArgument, KeyBaseURL, err)
		}
	}
	if base == "" {
		return nil, fmt.Errorf("%w: the openai engine needs %s in [engine] (the server's OpenAI API root, e.g. \"http://127.0.0.1:8000/v1\"), or a model resolved by the openai loader", sdk.ErrFailedPrecondition, KeyBaseURL)
	}
	c, err := newClient(s, base)
	if err != nil {
		return nil, err
	}
	name, key := s.Model, "engine."+KeyModel
	if name == "" && served {
		name, key = a.Reference, "model.ref"
	}
	m, err := c.findModel(ctx, name, key)
	if err != nil {
		c.close()
		return nil, err
	}
	tk, err := engineTokenizer(s, a, m.ID, c)
	if err != nil {
		c.close()
		return nil, err
	}
	u, _ := url.Parse(base)
	remote := !isLocal(ctx, u.Hostname())
	lr := &sdk.LoadResult{
		ExecutionProvider: "local server",
		Endpoint:          base,
		Remote:            remote,
		Served:            m.served(),
		RuntimeVersions:   map[string]string{"openai-api": s.API},
		ResidentBytes:     residentBytes(),
	}
	if remote {
		lr.ExecutionProvider = "remote server"
	}
	if v := c.serverVersion(ctx); v != "" {
		lr.RuntimeVersions["server"] = v
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sess != nil {
		c.close()
		return nil, fmt.Errorf("%w: a model is already loaded (Unload it first)", sdk.ErrFailedPrecondition)
	}
	e.sess = &session{c: c, model: m.ID, api: s.API, returnIDs: s.ReturnTokenIDs, tk: tk}
	lr.LoadNS = clock.Mono() - start
	return lr, nil
}

// engineTokenizer is the tokenizer that counts output tokens a server reports neither as ids nor
// in usage, and decodes id-only prompts for api = "chat": the engine's own tokenizer key when
// set, else the one the openai loader resolved the model with, else the artifact's tokenizer
// files, else the server's.
func engineTokenizer(s Settings, a sdk.Artifact, model string, c *client) (textTokenizer, error) {
	src := TokenizerServer
	switch {
	case s.tokenizerSet:
		src = s.Tokenizer
	case a.Format == FormatServed && a.Metadata[MetaTokenizer] != "":
		src = a.Metadata[MetaTokenizer]
	case len(a.Tokenizer.Files) > 0:
		tk, err := tokenizer.Load(a.Tokenizer.Files)
		if err != nil {
			return nil, fmt.Errorf("the artifact's tokenizer: %w", err)
		}
		return &localTokenizer{tk: tk, info: a.Tokenizer}, nil
	}
	return newTokenizer(src, model, c)
}

// residentBytes is this process's resident memory (Linux), 0 when unknown.
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// Unload implements sdk.Engine: it closes the idle connections.
func (e *Engine) Unload(context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sess != nil {
		e.sess.c.close()
		e.sess = nil
	}
	return nil
}

func checkDecoding(d sdk.Decoding) error {
	if d.MaxNewTokens <= 0 {
		return fmt.Errorf("%w: max_new_tokens = %d (valid: ≥ 1)", sdk.ErrInvalidArgument, d.MaxNewTokens)
	}
	return nil
}

// Warmup implements sdk.Engine: req.Batches static batches. A batch whose every request failed
// is an error: the server is not answering.
func (e *Engine) Warmup(ctx context.Context, req sdk.WarmupRequest) ([]sdk.BatchTiming, error) {
	var out []sdk.BatchTiming
	for i := 0; i < req.Batches; i++ {
		var failed []sdk.RequestResult
		bt, err := e.Generate(ctx, req.GenerateRequest, func(r sdk.RequestResult) error {
			if r.FinishReason == "error" {
				failed = append(failed, r)
			}
			return nil
		})
		if err != nil {
			return out, err
		}
		if len(failed) == len(req.Prompts) {
			return out, fmt.Errorf("%w: warmup batch %d: every request failed; the first: %s: %s", sdk.ErrUnavailable, i+1, failed[0].ErrorKind, failed[0].Error)
		}
		out = append(out, *bt)
	}
	return out, nil
}

// Generate implements sdk.Engine: every prompt of the batch is sent at once, each request on
// its own connection, and each result is emitted when its stream ends.
func (e *Engine) Generate(ctx context.Context, req sdk.GenerateRequest, emit func(sdk.RequestResult) error) (*sdk.BatchTiming, error) {
	s, err := e.session()
	if err != nil {
		return nil, err
	}
	if len(req.Prompts) == 0 {
		return nil, fmt.Errorf("%w: a batch needs at least one prompt", sdk.ErrInvalidArgument)
	}
	if err := checkDecoding(req.Decoding); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan sdk.RequestResult, len(req.Prompts))
	bt := &sdk.BatchTiming{StartMonoNS: clock.Mono()}
	for i, p := range req.Prompts {
		go func() { results <- s.do(ctx, p, i, req.Decoding, nil) }()
	}
	var emitErr error
	maxChunks := 0
	for range req.Prompts {
		r := <-results
		if emitErr != nil || ctx.Err() != nil {
			continue
		}
		bt.Requests++
		bt.InputTokens += r.InputTokens
		bt.OutputTokens += r.Tokens()
		if n := len(r.ChunkMonoNS); n > 0 && (bt.FirstTokenMonoNS == 0 || r.ChunkMonoNS[0] < bt.FirstTokenMonoNS) {
			bt.FirstTokenMonoNS = r.ChunkMonoNS[0]
		}
		maxChunks = max(maxChunks, len(r.ChunkMonoNS))
		if err := emit(r); err != nil {
			emitErr = err
			cancel()
		}
	}
	if emitErr != nil {
		return nil, emitErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	bt.EndMonoNS = clock.Mono()
	if bt.FirstTokenMonoNS == 0 {
		bt.FirstTokenMonoNS = bt.EndMonoNS // no request produced output
	}
	// The server's forward passes are not visible: the longest stream's chunks after its first
	// stand for the decode steps.
	bt.Steps = max(maxChunks-1, 0)
	return bt, nil
}

// Serve implements sdk.ContinuousEngine: each submitted request is sent at once and runs
// concurrently with the others (the server batches them); a cancel aborts its HTTP request,
// which the server sees as a closed connection. With opts.StepEvents, each chunk that carries
// output is one Step event.
func (e *Engine) Serve(ctx context.Context, opts sdk.ServeOptions, in <-chan sdk.ServeRequest, emit func(sdk.ServeEvent) error) error {
	s, err := e.session()
	if err != nil {
		return err
	}
	parent := ctx
	ctx, cancelAll := context.WithCancel(ctx)
	defer cancelAll()
	var (
		emitMu  sync.Mutex
		emitErr error
		runMu   sync.Mutex
		running = map[string]context.CancelFunc{}
		wg      sync.WaitGroup
	)
	send := func(ev sdk.ServeEvent) {
		emitMu.Lock()
		defer emitMu.Unlock()
		if emitErr != nil || parent.Err() != nil {
			return
		}
		if err := emit(ev); err != nil {
			emitErr = err
			cancelAll()
		}
	}
	inFlight := func() int {
		runMu.Lock()
		defer runMu.Unlock()
		return len(running)
	}
	var see func(id string) onChunk
	if opts.StepEvents {
		see = func(string) onChunk {
			return func(ts int64, toks []sdk.StepToken) {
				send(sdk.ServeEvent{Step: &sdk.ServeStep{MonoNS: ts, BatchSize: inFlight(), Tokens: toks}})
			}
		}
	}
	var bad error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case r, ok := <-in:
			if !ok {
				break loop
			}
			id := r.Prompt.ID
			runMu.Lock()
			stop, dup := running[id]
			runMu.Unlock()
			if r.Cancel {
				if dup {
					stop()
				}
				continue
			}
			switch {
			case id == "":
				bad = fmt.Errorf("%w: a submitted request has no id", sdk.ErrInvalidArgument)
			case dup:
				bad = fmt.Errorf("%w: request %q submitted while one with that id is running", sdk.ErrInvalidArgument, id)
			default:
				bad = checkDecoding(r.Decoding)
			}
			if bad != nil {
				break loop
			}
			rctx, rcancel := context.WithCancel(ctx)
			runMu.Lock()
			running[id] = rcancel
			runMu.Unlock()
			var cb onChunk
			if see != nil {
				cb = see(id)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				res := s.do(rctx, r.Prompt, 0, r.Decoding, cb)
				rcancel()
				runMu.Lock()
				delete(running, id)
				runMu.Unlock()
				send(sdk.ServeEvent{Done: &res})
			}()
		}
	}
	if bad != nil {
		cancelAll()
	}
	wg.Wait()
	emitMu.Lock()
	defer emitMu.Unlock()
	switch {
	case emitErr != nil:
		return emitErr
	case parent.Err() != nil:
		return parent.Err()
	case bad != nil:
		return bad
	}
	return nil
}
