package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeOpenAI is a minimal OpenAI-compatible server: one model "tiny", a tokenizer of one token
// per byte, and completions streamed one token per chunk with token_ids and usage.
func fakeOpenAI(t *testing.T) (base string, completions *atomic.Int64) {
	t.Helper()
	completions = new(atomic.Int64)
	js := func(w http.ResponseWriter, v any) { _ = json.NewEncoder(w).Encode(v) }
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, _ *http.Request) {
		js(w, map[string]any{"data": []any{map[string]any{"id": "tiny", "owned_by": "e2e", "max_model_len": 4096}}})
	})
	mux.HandleFunc("POST /tokenize", func(w http.ResponseWriter, r *http.Request) {
		var b struct{ Prompt string }
		_ = json.NewDecoder(r.Body).Decode(&b)
		ids := []int{}
		for i := range len(b.Prompt) {
			ids = append(ids, int(b.Prompt[i]))
		}
		js(w, map[string]any{"tokens": ids, "count": len(ids), "max_model_len": 4096})
	})
	mux.HandleFunc("POST /detokenize", func(w http.ResponseWriter, r *http.Request) {
		var b struct{ Tokens []int }
		_ = json.NewDecoder(r.Body).Decode(&b)
		text := make([]byte, len(b.Tokens))
		for i, id := range b.Tokens {
			text[i] = byte(id)
		}
		js(w, map[string]any{"prompt": string(text)})
	})
	mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) {
		completions.Add(1)
		var b struct {
			Prompt    json.RawMessage `json:"prompt"`
			MaxTokens int             `json:"max_tokens"`
		}
		_ = json.NewDecoder(r.Body).Decode(&b)
		var ids []int
		var text string
		in := 0
		if json.Unmarshal(b.Prompt, &ids) == nil {
			in = len(ids)
		} else if json.Unmarshal(b.Prompt, &text) == nil {
			in = len(text)
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		for i := range b.MaxTokens {
			if r.Context().Err() != nil {
				return // the client went away (a cancelled request)
			}
			finish := "null"
			if i == b.MaxTokens-1 {
				finish = `"length"`
			}
			fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"text\":\"a\",\"token_ids\":[97],\"finish_reason\":%s}]}\n\n", finish)
			fl.Flush()
			time.Sleep(time.Millisecond)
		}
		fmt.Fprintf(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d}}\n\ndata: [DONE]\n\n", in, b.MaxTokens)
		fl.Flush()
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/v1", completions
}

// TestServedModelPluginCheckAndRun runs `lemctl plugins check` on the openai plugin against a
// fake server, then a whole `lemctl run` whose model is served: every request goes to the
// server, and the result counts its tokens.
func TestServedModelPluginCheckAndRun(t *testing.T) {
	base, completions := fakeOpenAI(t)
	dir := installProductPlugin(t, "openai")

	r := lemctl(t, nil, "plugins", "check", dir+"/lem-plugin-openai", "--reference", "tiny", "--config", `{"base_url": "`+base+`"}`)
	if code := r.wait(t, 3*time.Minute); code != 0 || !strings.Contains(r.stdout.String(), "rules passed") {
		t.Fatalf("plugins check exited %d\nstdout:\n%s\nstderr:\n%s", code, r.stdout.String(), r.stderr.String())
	}

	cfg := experiment("served", 1, noMeters)
	cfg = strings.Replace(cfg, "plugin = \"example-loader\"\nref = \"example:tiny\"", "plugin = \"openai\"\nref = \"tiny\"\nbase_url = \""+base+"\"", 1)
	cfg = strings.Replace(cfg, "plugin = \"example-engine\"", "plugin = \"openai\"", 1)
	before := completions.Load()
	run, res := runExperiment(t, cfg, nil, "--plugin-dir", dir)
	if run.code != 0 {
		t.Fatalf("run exited %d\nstderr:\n%s", run.code, run.stderr.String())
	}
	exp := experimentID(t, res)
	raw := readRaw(t, res, exp, 0)
	if raw.Engine.Plugin != "openai" || raw.Engine.ExecutionProvider != "local server" {
		t.Errorf("engine %+v, want openai on a local server", raw.Engine)
	}
	if len(raw.Requests) < 16 {
		t.Fatalf("%d requests recorded, want at least the 16 prompts", len(raw.Requests))
	}
	for _, q := range raw.Requests {
		if q.OutputTokens != 8 || len(q.TokenMonoNS) != 8 || q.InputTokens <= 0 || q.FinishReason != "length" {
			t.Fatalf("request %+v, want 8 timed output tokens and the prompt's input tokens", q)
		}
	}
	if sent := completions.Load() - before; sent < int64(len(raw.Requests)) {
		t.Errorf("the server saw %d completions for %d recorded requests", sent, len(raw.Requests))
	}
}
