package openai

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/clock"
)

// fake is an OpenAI-compatible server for tests. Its tokenizer is one token per byte (id = the
// byte); it streams one output token per chunk, each token's text being tokenText, and records
// when it sent each chunk (just before writing it) on the shared clock.
//
// A prompt's text chooses what happens to its request: "fail500", "fail429", "fail400" answer
// that status; "drop" stops the stream after two chunks without a finish reason; "hang" sends
// nothing until the client goes away; anything else streams normally.
type fake struct {
	t         testing.TB
	srv       *httptest.Server
	models    []map[string]any
	gap       time.Duration // between chunks
	sendIDs   bool          // token_ids in each chunk (honoured only when the request asks)
	sendUsage bool          // a usage chunk when stream_options.include_usage
	tokenText string        // text of each output token (default "a")
	key       string        // expected bearer key; "" accepts any

	mu       sync.Mutex
	sent     map[string][]int64 // request's first prompt word → chunk send times
	bodies   []map[string]any
	auth     []string
	requests int
}

func newFake(t testing.TB) *fake {
	f := &fake{t: t, sendIDs: true, sendUsage: true, tokenText: "a", sent: map[string][]int64{},
		models: []map[string]any{{"id": "tiny", "object": "model", "owned_by": "lemctl-test", "root": "tiny-root", "max_model_len": 2048}}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", f.handleModels)
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, `{"version":"fake-1.0"}`) })
	mux.HandleFunc("POST /tokenize", f.handleTokenize)
	mux.HandleFunc("POST /detokenize", f.handleDetokenize)
	mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) { f.handleGenerate(w, r, false) })
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) { f.handleGenerate(w, r, true) })
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fake) base() string { return f.srv.URL + "/v1" }

func (f *fake) authorized(w http.ResponseWriter, r *http.Request) bool {
	h := r.Header.Get("Authorization")
	f.mu.Lock()
	f.auth = append(f.auth, h)
	f.mu.Unlock()
	if f.key != "" && h != "Bearer "+f.key {
		// Echo the header back, as a careless server might: the plugin must scrub it.
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error":{"message":"bad key in header %q"}}`, h)
		return false
	}
	return true
}

func (f *fake) handleModels(w http.ResponseWriter, r *http.Request) {
	if !f.authorized(w, r) {
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": f.models})
}

func (f *fake) handleTokenize(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Prompt string `json:"prompt"`
	}
	if !f.authorized(w, r) || !decode(w, r, &req) {
		return
	}
	ids := make([]int32, len(req.Prompt))
	for i := range len(req.Prompt) {
		ids[i] = int32(req.Prompt[i])
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"tokens": ids, "count": len(ids), "max_model_len": 2048})
}

func (f *fake) handleDetokenize(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Tokens []int32 `json:"tokens"`
	}
	if !f.authorized(w, r) || !decode(w, r, &req) {
		return
	}
	b := make([]byte, len(req.Tokens))
	for i, t := range req.Tokens {
		b[i] = byte(t)
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"prompt": string(b)})
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":{"message":%q}}`, err.Error())
		return false
	}
	return true
}

func (f *fake) handleGenerate(w http.ResponseWriter, r *http.Request, chat bool) {
	if !f.authorized(w, r) {
		return
	}
	var body map[string]any
	if !decode(w, r, &body) {
		return
	}
	f.mu.Lock()
	f.requests++
	f.bodies = append(f.bodies, body)
	f.mu.Unlock()
	var prompt string
	var inputTokens int
	switch p := body["prompt"].(type) {
	case string:
		prompt, inputTokens = p, len(p)
	case []any:
		b := make([]byte, len(p))
		for i, x := range p {
			b[i] = byte(x.(float64))
		}
		prompt, inputTokens = string(b), len(p)
	}
	if chat {
		msgs, _ := body["messages"].([]any)
		if len(msgs) == 1 {
			prompt = msgs[0].(map[string]any)["content"].(string)
			inputTokens = len(prompt)
		}
	}
	if name, _ := body["model"].(string); name != f.models[0]["id"] {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"error":{"message":"model %q does not exist"}}`, name)
		return
	}
	switch {
	case strings.HasPrefix(prompt, "fail500"):
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, `{"error":{"message":"engine crashed"}}`)
		return
	case strings.HasPrefix(prompt, "fail429"):
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"error":{"message":"slow down"}}`)
		return
	case strings.HasPrefix(prompt, "fail400"):
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":{"message":"bad request"}}`)
		return
	case strings.HasPrefix(prompt, "hang"):
		<-r.Context().Done()
		return
	}
	maxTokens := int(body["max_tokens"].(float64))
	wantIDs, _ := body["return_token_ids"].(bool)
	opts, _ := body["stream_options"].(map[string]any)
	wantUsage, _ := opts["include_usage"].(bool)
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	fl := w.(http.Flusher)
	key := strings.Fields(prompt + " ?")[0]
	event := func(v any) bool {
		b, _ := json.Marshal(v)
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return false
		}
		fl.Flush()
		return r.Context().Err() == nil
	}
	if chat && !event(map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"role": "assistant", "content": ""}}}}) {
		return
	}
	n := 0
	for n < maxTokens {
		if n > 0 && f.gap > 0 {
			select {
			case <-time.After(f.gap):
			case <-r.Context().Done():
				return
			}
		}
		choice := map[string]any{"index": 0, "finish_reason": nil}
		if chat {
			choice["delta"] = map[string]any{"content": f.tokenText}
		} else {
			choice["text"] = f.tokenText
		}
		if f.sendIDs && wantIDs {
			choice["token_ids"] = []int{int(f.tokenText[0])}
		}
		if n == maxTokens-1 {
			choice["finish_reason"] = "length"
		}
		if prompt == "drop" && n == 2 {
			return // the stream ends without a finish reason
		}
		// The send time is read just before the write: the client can read a chunk before a
		// stamp taken after the flush.
		f.mu.Lock()
		f.sent[key] = append(f.sent[key], clock.Mono())
		f.mu.Unlock()
		ok := event(map[string]any{"choices": []any{choice}})
		if !ok {
			return
		}
		n++
	}
	if f.sendUsage && wantUsage {
		event(map[string]any{"choices": []any{}, "usage": map[string]any{"prompt_tokens": inputTokens, "completion_tokens": n, "total_tokens": inputTokens + n}})
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	fl.Flush()
}

func (f *fake) sentTimes(key string) []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int64(nil), f.sent[key]...)
}

// loadedEngine returns an engine configured with table (base_url added) and loaded.
func loadedEngine(t testing.TB, f *fake, table map[string]any) *Engine {
	t.Helper()
	e := NewEngine()
	cfg := map[string]any{KeyBaseURL: f.base()}
	for k, v := range table {
		cfg[k] = v
	}
	configure(t, cfg, e.SetSettings)
	if _, err := e.Load(context.Background(), sdk.LoadRequest{Artifact: sdk.Artifact{Reference: "x", Format: "onnx"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Unload(context.Background()) })
	return e
}

func configure(t testing.TB, table map[string]any, set func(Settings)) {
	t.Helper()
	cfg, errs := sdk.ValidateConfig(Schema(), table)
	if len(errs) > 0 {
		t.Fatalf("config %v: %v", table, errs)
	}
	s, errs := ParseSettings(context.Background(), cfg)
	if len(errs) > 0 {
		t.Fatalf("config %v: %v", table, errs)
	}
	set(s)
}

// generate runs one batch and returns its results by id.
func generate(t testing.TB, e *Engine, prompts []sdk.Prompt, dec sdk.Decoding) (map[string]sdk.RequestResult, *sdk.BatchTiming) {
	t.Helper()
	out := map[string]sdk.RequestResult{}
	bt, err := e.Generate(context.Background(), sdk.GenerateRequest{Prompts: prompts, Decoding: dec}, func(r sdk.RequestResult) error {
		if _, dup := out[r.ID]; dup {
			t.Errorf("request %q emitted twice", r.ID)
		}
		out[r.ID] = r
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(prompts) {
		t.Fatalf("%d results for %d prompts", len(out), len(prompts))
	}
	return out, bt
}
