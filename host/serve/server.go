package serve

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/lemctl/lemctl/sdk"
)

// Tokenizer is what the server needs of the loader: the model's tokenizer.
type Tokenizer interface {
	Tokenize(ctx context.Context, ref string, texts []string) ([][]int32, error)
	Detokenize(ctx context.Context, ref string, ids [][]int32) ([]string, error)
}

// Options configure a Server.
type Options struct {
	// Model is the served model's name (its reference, e.g. synthetic:gpt2-tiny): requests must
	// name it, and the loader is asked with it.
	Model string
	// EngineName names the engine plugin (startup line, /metrics).
	EngineName string
	Engine     sdk.Engine
	Tokenizer  Tokenizer
	// ContextLength and VocabSize bound prompts and max_tokens (0: not checked).
	ContextLength int
	VocabSize     int
	// Mode is Continuous or Static (see ProbeContinuous).
	Mode string
	// MaxBatch is the most requests that run at once; MaxQueue the most that wait (more: 429).
	MaxBatch int
	MaxQueue int
	Logger   hclog.Logger
	// Now gives the created time of answers (time.Now when nil).
	Now func() time.Time
}

// DefaultMaxTokens is max_tokens of a completion that does not set it (OpenAI's default).
const DefaultMaxTokens = 16

// Server answers the HTTP API over a Scheduler.
type Server struct {
	o     Options
	sched *Scheduler
	m     *metrics
	mux   *http.ServeMux
}

// New returns a server; Handler serves its API and Run runs it.
func New(o Options) (*Server, error) {
	switch {
	case o.Engine == nil || o.Tokenizer == nil:
		return nil, errors.New("serve: an engine and a tokenizer are required")
	case o.MaxBatch < 1:
		return nil, fmt.Errorf("serve: max batch %d must be at least 1", o.MaxBatch)
	case o.MaxQueue < 0:
		return nil, fmt.Errorf("serve: max queue %d must not be negative", o.MaxQueue)
	case o.Mode != Continuous && o.Mode != Static:
		return nil, fmt.Errorf("serve: mode %q is neither %s nor %s", o.Mode, Continuous, Static)
	}
	if _, ok := o.Engine.(sdk.ContinuousEngine); o.Mode == Continuous && !ok {
		return nil, errors.New("serve: continuous batching needs an sdk.ContinuousEngine")
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{o: o, m: newMetrics(o.Model, o.EngineName, o.Mode, o.MaxBatch)}
	s.sched = newScheduler(o.Engine, o.Mode, o.MaxBatch, o.MaxQueue, s.m)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", s.models)
	mux.HandleFunc("POST /v1/completions", handle(s, s.prepareCompletion))
	mux.HandleFunc("POST /v1/chat/completions", handle(s, s.prepareChat))
	mux.HandleFunc("POST /tokenize", s.tokenize)
	mux.HandleFunc("POST /detokenize", s.detokenize)
	mux.Handle("GET /metrics", s.m.handler())
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{Status: http.StatusNotFound, Type: "invalid_request_error",
			Message: fmt.Sprintf("%s %s is not an endpoint of lemctl serve (GET /v1/models, POST /v1/completions, POST /v1/chat/completions, POST /tokenize, POST /detokenize, GET /metrics, GET /health)", r.Method, r.URL.Path)})
	})
	s.mux = mux
	return s, nil
}

// Handler is the server's HTTP API.
func (s *Server) Handler() http.Handler { return s.mux }

// RunEngine runs the scheduler's engine loop until Drain's end, ctx's end or the engine's
// failure (tests that serve Handler with httptest use it; Run does both).
func (s *Server) RunEngine(ctx context.Context) error { return s.sched.run(ctx) }

// Run serves the API on ln until ctx ends, then shuts down gracefully: it stops accepting
// connections, refuses new requests (503), lets those queued and running finish for at most
// grace, cancels what is left, and returns once the engine loop has stopped. It returns nil
// after a graceful shutdown, or the engine's or the listener's error.
func (s *Server) Run(ctx context.Context, ln net.Listener, grace time.Duration) error {
	engCtx, cancelEng := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelEng()
	engErr := make(chan error, 1)
	go func() { engErr <- s.sched.run(engCtx) }()
	hs := &http.Server{Handler: s.mux, ReadHeaderTimeout: 30 * time.Second}
	srvErr := make(chan error, 1)
	go func() { srvErr <- hs.Serve(ln) }()

	var failure error
	engineDone := false
	select {
	case <-ctx.Done():
	case err := <-engErr:
		engineDone = true
		failure = err
		if failure == nil {
			failure = errors.New("the engine loop stopped")
		}
	case err := <-srvErr:
		failure = fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	s.o.Logger.Info("shutting down: no new requests", "grace", grace.String())
	s.sched.close()
	graceCtx, cancelGrace := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancelGrace()
	if err := hs.Shutdown(graceCtx); err != nil {
		s.o.Logger.Warn("grace period over: cancelling the requests still running")
		s.sched.cancelAll()
		_ = hs.Close()
	}
	if !engineDone {
		// The requests are done (or cancelled): the engine loop ends when the last Done arrives.
		bound := time.NewTimer(grace + 10*time.Second)
		defer bound.Stop()
		select {
		case err := <-engErr:
			if failure == nil && err != nil {
				failure = err
			}
		case <-bound.C:
			cancelEng()
			if err := <-engErr; failure == nil && err != nil && !errors.Is(err, context.Canceled) {
				failure = err
			}
		}
	}
	return failure
}

// Drain refuses new requests and lets RunEngine return once those queued and running are done.
func (s *Server) Drain() { s.sched.close() }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.Status, map[string]any{"error": e})
}

// fail answers e and counts it.
func (s *Server) fail(w http.ResponseWriter, e *apiError, finish string) {
	s.m.answered(e.Status, finish)
	writeError(w, e)
}

func (s *Server) models(w http.ResponseWriter, _ *http.Request) {
	m := map[string]any{"id": s.o.Model, "object": "model", "created": s.o.Now().Unix(), "owned_by": "lemctl", "root": s.o.Model}
	if s.o.ContextLength > 0 {
		m["max_model_len"] = s.o.ContextLength
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []any{m}})
}

// checkModel accepts the served model's name; "" is refused as missing.
func (s *Server) checkModel(name string) *apiError {
	if name == "" {
		return badParam("model", "model is required (this server serves %q)", s.o.Model)
	}
	if name != s.o.Model {
		return notFound("model_not_found", "the model %q does not exist: this server serves %q", name, s.o.Model)
	}
	return nil
}

// prepared is a validated request, ready for the scheduler.
type prepared struct {
	id        string
	prompt    sdk.Prompt
	dec       sdk.Decoding
	promptIDs []int32
	stream    bool
	usage     bool // stream_options.include_usage
	ids       bool // return_token_ids
	chat      bool
}

// decoding validates sp and builds the decoding of a prompt of n tokens; maxTokens is the
// effective max_tokens parameter and its name.
func (s *Server) decoding(sp *sampling, maxTokens *int, maxName string, n int, defaultMax int) (sdk.Decoding, *apiError) {
	if e := sp.checkUnsupported(); e != nil {
		return sdk.Decoding{}, e
	}
	if e := sp.checkSampling(); e != nil {
		return sdk.Decoding{}, e
	}
	max := defaultMax
	if maxTokens != nil {
		max = *maxTokens
		if max < 1 {
			return sdk.Decoding{}, badParam(maxName, "%s = %d must be at least 1", maxName, max)
		}
	}
	if c := s.o.ContextLength; c > 0 {
		if n >= c {
			return sdk.Decoding{}, badParam("prompt", "the prompt has %d tokens; this model's context is %d tokens", n, c)
		}
		if n+max > c {
			if maxTokens != nil {
				return sdk.Decoding{}, badParam(maxName, "%s = %d with a prompt of %d tokens exceeds this model's context of %d tokens", maxName, max, n, c)
			}
			max = c - n
		}
	}
	d := sdk.Decoding{MaxNewTokens: max, IgnoreEOS: sp.IgnoreEOS, ReturnText: true}
	temp := 1.0 // OpenAI's default
	if sp.Temperature != nil {
		temp = *sp.Temperature
	}
	if temp == 0 {
		d.Greedy = true
		return d, nil
	}
	d.Temperature, d.TopP = temp, 1
	if sp.TopP != nil {
		d.TopP = *sp.TopP
	}
	if sp.TopK != nil && *sp.TopK > 0 {
		d.TopK = *sp.TopK
	}
	if sp.Seed != nil {
		d.Seed = uint64(*sp.Seed)
	} else {
		var b [8]byte
		_, _ = rand.Read(b[:])
		for _, x := range b {
			d.Seed = d.Seed<<8 | uint64(x)
		}
	}
	return d, nil
}

func newID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// tokenizeOne tokenizes text with the loader.
func (s *Server) tokenizeOne(ctx context.Context, text string) ([]int32, *apiError) {
	ids, err := s.o.Tokenizer.Tokenize(ctx, s.o.Model, []string{text})
	if err != nil || len(ids) != 1 {
		return nil, serverError("tokenize the prompt: %v", err)
	}
	return ids[0], nil
}

// handle is the handler of one generation endpoint: decode its JSON body into a Req, check and
// prepare it, and run it (streamed or not).
func handle[Req any](s *Server, prepare func(context.Context, *Req) (*prepared, *apiError)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req Req
		if e := decodeJSON(r, &req); e != nil {
			s.fail(w, e, "")
			return
		}
		p, e := prepare(r.Context(), &req)
		if e != nil {
			s.fail(w, e, "")
			return
		}
		s.run(w, r, p)
	}
}

func (s *Server) prepareCompletion(ctx context.Context, req *completionRequest) (*prepared, *apiError) {
	if e := s.checkModel(req.Model); e != nil {
		return nil, e
	}
	switch {
	case req.Echo:
		return nil, badParam("echo", "echo is not supported by lemctl serve")
	case req.BestOf != nil && *req.BestOf != 1:
		return nil, badParam("best_of", "best_of = %d: lemctl serve returns one choice per request (best_of must be 1)", *req.BestOf)
	case req.Suffix != nil && *req.Suffix != "":
		return nil, badParam("suffix", "suffix is not supported by lemctl serve")
	}
	in, e := parsePrompt(req.Prompt, s.o.VocabSize)
	if e != nil {
		return nil, e
	}
	ids := in.ids
	if !in.isIDs {
		if ids, e = s.tokenizeOne(ctx, in.text); e != nil {
			return nil, e
		}
		if len(ids) == 0 {
			return nil, badParam("prompt", "prompt has no tokens")
		}
	}
	dec, e := s.decoding(&req.sampling, req.MaxTokens, "max_tokens", len(ids), DefaultMaxTokens)
	if e != nil {
		return nil, e
	}
	return s.prepared(&req.sampling, ids, dec, false), nil
}

func (s *Server) prepared(sp *sampling, ids []int32, dec sdk.Decoding, chat bool) *prepared {
	prefix := "cmpl-"
	if chat {
		prefix = "chatcmpl-"
	}
	p := &prepared{id: newID(prefix), promptIDs: ids, dec: dec, stream: sp.Stream, ids: sp.ReturnTokenIDs, chat: chat}
	p.prompt = sdk.Prompt{ID: p.id, IDs: ids}
	p.usage = sp.StreamOptions != nil && sp.StreamOptions.IncludeUsage
	return p
}

func (s *Server) prepareChat(ctx context.Context, req *chatRequest) (*prepared, *apiError) {
	if e := s.checkModel(req.Model); e != nil {
		return nil, e
	}
	if len(req.Tools) > 0 {
		return nil, badParam("tools", "tools are not supported by lemctl serve")
	}
	turns, e := parseMessages(req.Messages)
	if e != nil {
		return nil, e
	}
	ids, e := s.tokenizeOne(ctx, ChatTemplate(turns))
	if e != nil {
		return nil, e
	}
	maxTokens, name := req.MaxCompletionTokens, "max_completion_tokens"
	if maxTokens == nil {
		maxTokens, name = req.MaxTokens, "max_tokens"
	}
	def := DefaultMaxTokens
	if s.o.ContextLength > 0 {
		def = math.MaxInt32 // the rest of the context (vLLM's default)
	}
	dec, e := s.decoding(&req.sampling, maxTokens, name, len(ids), def)
	if e != nil {
		return nil, e
	}
	return s.prepared(&req.sampling, ids, dec, true), nil
}

// run queues p, then answers it whole or streams it; a client that goes away cancels it.
func (s *Server) run(w http.ResponseWriter, r *http.Request, p *prepared) {
	j := newJob(p.id, p.prompt, p.dec)
	if err := s.sched.submit(j); err != nil {
		switch {
		case errors.Is(err, ErrQueueFull):
			s.fail(w, &apiError{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: strp("queue_full"),
				Message: fmt.Sprintf("the server's queue is full (%d requests waiting, %d running); retry later", s.o.MaxQueue, s.o.MaxBatch)}, "")
		case errors.Is(err, ErrClosed):
			s.fail(w, &apiError{Status: http.StatusServiceUnavailable, Type: "server_error", Code: strp("shutting_down"), Message: "the server is shutting down"}, "")
		default:
			s.fail(w, serverError("%v", err), "error")
		}
		return
	}
	if p.stream {
		s.stream(w, r, p, j)
		return
	}
	for {
		select {
		case <-j.notify:
		case <-r.Context().Done():
			s.sched.cancel(j)
			s.m.answered(499, "cancelled")
			return
		}
		_, res, err := j.take()
		if err != nil {
			s.fail(w, serverError("%v", err), "error")
			return
		}
		if res == nil {
			continue
		}
		if res.FinishReason == "error" {
			s.fail(w, serverError("the engine failed the request: %s", res.Error), "error")
			return
		}
		if res.FinishReason == "cancelled" {
			s.fail(w, &apiError{Status: http.StatusServiceUnavailable, Type: "server_error", Code: strp("cancelled"), Message: "the request was cancelled: the server is shutting down"}, "cancelled")
			return
		}
		fr := finishReason(res.FinishReason)
		u := newUsage(len(p.promptIDs), res.Tokens())
		var out any
		if p.chat {
			text := res.Text
			c := chatChoice{Message: &chatMessageOut{Role: "assistant", Content: &text}, FinishReason: &fr}
			if p.ids {
				c.PromptTokenIDs, c.TokenIDs = nonNil(p.promptIDs), nonNil(res.OutputIDs)
			}
			out = chatResponse{ID: p.id, Object: "chat.completion", Created: s.o.Now().Unix(), Model: s.o.Model, Choices: []chatChoice{c}, Usage: u}
		} else {
			c := completionChoice{Text: res.Text, FinishReason: &fr}
			if p.ids {
				c.PromptTokenIDs, c.TokenIDs = nonNil(p.promptIDs), nonNil(res.OutputIDs)
			}
			out = completionResponse{ID: p.id, Object: "text_completion", Created: s.o.Now().Unix(), Model: s.o.Model, Choices: []completionChoice{c}, Usage: u}
		}
		s.m.answered(http.StatusOK, fr)
		writeJSON(w, http.StatusOK, out)
		return
	}
}

func nonNil(ids []int32) []int32 {
	if ids == nil {
		return []int32{}
	}
	return ids
}

// sse writes server-sent events.
type sse struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (e *sse) event(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return e.raw(b)
}

func (e *sse) raw(b []byte) error {
	if _, err := fmt.Fprintf(e.w, "data: %s\n\n", b); err != nil {
		return err
	}
	return e.rc.Flush()
}

// stream answers p as server-sent events: one chunk per token, a chunk with the finish reason,
// a usage chunk when asked, then [DONE].
func (s *Server) stream(w http.ResponseWriter, r *http.Request, p *prepared, j *job) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	ev := &sse{w: w, rc: http.NewResponseController(w)}
	created := s.o.Now().Unix()
	first := true
	chunk := func(text string, ids []int32, finish *string) any {
		var pids []int32
		if p.ids && first {
			pids = nonNil(p.promptIDs)
		}
		if !p.ids {
			ids = nil
		}
		if p.chat {
			d := &chatMessageOut{Content: &text}
			if first {
				d.Role = "assistant"
			}
			if finish != nil && text == "" {
				d = &chatMessageOut{}
			}
			first = false
			return chatResponse{ID: p.id, Object: "chat.completion.chunk", Created: created, Model: s.o.Model,
				Choices: []chatChoice{{Delta: d, FinishReason: finish, PromptTokenIDs: pids, TokenIDs: ids}}}
		}
		first = false
		return completionResponse{ID: p.id, Object: "text_completion", Created: created, Model: s.o.Model,
			Choices: []completionChoice{{Text: text, FinishReason: finish, PromptTokenIDs: pids, TokenIDs: ids}}}
	}
	gone := func() {
		s.sched.cancel(j)
		s.m.answered(499, "cancelled")
	}
	sent := 0
	for {
		select {
		case <-j.notify:
		case <-r.Context().Done():
			gone()
			return
		}
		toks, res, err := j.take()
		for _, t := range toks {
			if ev.event(chunk(t.Text, []int32{t.TokenID}, nil)) != nil {
				gone()
				return
			}
			sent++
		}
		if err == nil && res == nil {
			continue
		}
		var e *apiError
		switch {
		case err != nil:
			e = serverError("%v", err)
		case res.FinishReason == "error":
			e = serverError("the engine failed the request: %s", res.Error)
		case res.FinishReason == "cancelled":
			e = &apiError{Status: http.StatusServiceUnavailable, Type: "server_error", Code: strp("cancelled"), Message: "the request was cancelled: the server is shutting down"}
		}
		if e != nil {
			_ = ev.event(map[string]any{"error": e})
			_ = ev.raw([]byte("[DONE]"))
			finish := "error"
			if err == nil && res.FinishReason == "cancelled" {
				finish = "cancelled"
			}
			s.m.answered(e.Status, finish)
			return
		}
		// Static batching, or an engine without step events: the tokens come with the result.
		if sent == 0 && len(res.OutputIDs) > 0 {
			if ev.event(chunk(res.Text, res.OutputIDs, nil)) != nil {
				gone()
				return
			}
		}
		fr := finishReason(res.FinishReason)
		_ = ev.event(chunk("", nil, &fr))
		if p.usage {
			u := newUsage(len(p.promptIDs), res.Tokens())
			if p.chat {
				_ = ev.event(chatResponse{ID: p.id, Object: "chat.completion.chunk", Created: created, Model: s.o.Model, Choices: []chatChoice{}, Usage: u})
			} else {
				_ = ev.event(completionResponse{ID: p.id, Object: "text_completion", Created: created, Model: s.o.Model, Choices: []completionChoice{}, Usage: u})
			}
		}
		_ = ev.raw([]byte("[DONE]"))
		s.m.answered(http.StatusOK, fr)
		return
	}
}

// tokenizeRequest is vLLM's POST /tokenize: a prompt, or chat messages.
type tokenizeRequest struct {
	Model    string        `json:"model"`
	Prompt   *string       `json:"prompt"`
	Messages []chatMessage `json:"messages"`
}

func (s *Server) tokenize(w http.ResponseWriter, r *http.Request) {
	var req tokenizeRequest
	if e := decodeJSON(r, &req); e != nil {
		writeError(w, e)
		return
	}
	if req.Model != "" {
		if e := s.checkModel(req.Model); e != nil {
			writeError(w, e)
			return
		}
	}
	var text string
	switch {
	case req.Prompt != nil && req.Messages != nil:
		writeError(w, badParam("prompt", "give prompt or messages, not both"))
		return
	case req.Prompt != nil:
		text = *req.Prompt
	case req.Messages != nil:
		turns, e := parseMessages(req.Messages)
		if e != nil {
			writeError(w, e)
			return
		}
		text = ChatTemplate(turns)
	default:
		writeError(w, badParam("prompt", "prompt (a string) or messages is required"))
		return
	}
	ids, e := s.tokenizeOne(r.Context(), text)
	if e != nil {
		writeError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"count": len(ids), "max_model_len": s.o.ContextLength, "tokens": nonNil(ids)})
}

// detokenizeRequest is vLLM's POST /detokenize.
type detokenizeRequest struct {
	Model  string  `json:"model"`
	Tokens []int64 `json:"tokens"`
}

func (s *Server) detokenize(w http.ResponseWriter, r *http.Request) {
	var req detokenizeRequest
	if e := decodeJSON(r, &req); e != nil {
		writeError(w, e)
		return
	}
	if req.Model != "" {
		if e := s.checkModel(req.Model); e != nil {
			writeError(w, e)
			return
		}
	}
	if req.Tokens == nil {
		writeError(w, badParam("tokens", "tokens (an array of token ids) is required"))
		return
	}
	ids := make([]int32, len(req.Tokens))
	for i, t := range req.Tokens {
		if t < 0 || t > math.MaxInt32 || (s.o.VocabSize > 0 && t >= int64(s.o.VocabSize)) {
			writeError(w, badParam("tokens", "tokens[%d] = %d is not a token id in [0, %d)", i, t, s.o.VocabSize))
			return
		}
		ids[i] = int32(t)
	}
	texts, err := s.o.Tokenizer.Detokenize(r.Context(), s.o.Model, [][]int32{ids})
	if err != nil || len(texts) != 1 {
		writeError(w, serverError("detokenize: %v", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"prompt": texts[0]})
}
