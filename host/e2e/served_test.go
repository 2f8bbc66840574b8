package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// flakyServer is an OpenAI-compatible server for the served-load test: it streams max_tokens
// one-token chunks (with token ids and usage) and answers HTTP 500 to every request whose prompt
// starts with "fail".
type flakyServer struct {
	mu      sync.Mutex
	served  int
	refused int
}

func (s *flakyServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"object":"list","data":[{"id":"tiny","object":"model","owned_by":"test","max_model_len":2048}]}`)
	})
	mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Prompt    any `json:"prompt"`
			MaxTokens int `json:"max_tokens"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		p, _ := body.Prompt.(string)
		s.mu.Lock()
		fail := strings.HasPrefix(p, "fail")
		if fail {
			s.refused++
		} else {
			s.served++
		}
		s.mu.Unlock()
		if fail {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"error":{"message":"engine crashed"}}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		for i := 0; i < body.MaxTokens; i++ {
			finish := "null"
			if i == body.MaxTokens-1 {
				finish = `"length"`
			}
			fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"text\":\"a\",\"token_ids\":[97],\"finish_reason\":%s}]}\n\n", finish)
			fl.Flush()
		}
		fmt.Fprintf(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n", body.MaxTokens, body.MaxTokens+3)
		fmt.Fprint(w, "data: [DONE]\n\n")
		fl.Flush()
	})
	return mux
}

// TestRunServedLoadFailures runs a poisson load through the openai engine plugin against a server
// that fails one prompt in ten with HTTP 500: the run completes, counts exactly 10 % failures of
// kind http_5xx, and the verdict is invalid because that is above validity.max_error_rate (5 %);
// the summary says so. The server is on this machine, so energy stays attributed.
func TestRunServedLoadFailures(t *testing.T) {
	plugins := productPlugins(t, "openai", "fsstore")
	fs := &flakyServer{}
	srv := httptest.NewServer(fs.handler())
	defer srv.Close()
	dir := t.TempDir()
	var lines []string
	for i := range 10 {
		text := fmt.Sprintf("prompt number %d", i)
		if i == 9 { // not among the warm-up's first max_concurrency prompts
			text = "fail this one"
		}
		lines = append(lines, fmt.Sprintf(`{"prompt": %q}`, text))
	}
	data := filepath.Join(dir, "prompts.jsonl")
	if err := os.WriteFile(data, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`name = "served"

[model]
plugin = "openai"
ref = "tiny"
base_url = %q
tokenizer = "none"

[engine]
plugin = "openai"

[workload]
dataset = %q
prompts = 10
arrival = "poisson"
rate = 40.0
requests = 40
max_concurrency = 4
max_new_tokens = 4
`+quickUnmetered+`

[validity]
max_error_rate = 0.05
`, srv.URL+"/v1", data)
	r, res := runExperiment(t, cfg, nil, "--plugin-dir", plugins)
	if r.code != 0 {
		t.Fatalf("run exited %d\nstderr:\n%s", r.code, r.stderr.String())
	}
	exp := experimentID(t, res)
	raw := readRaw(t, res, exp, 0)
	l := raw.Load
	if l == nil || l.Path != "serve" || l.Sent != 40 || l.Failed != 4 || l.FailuresByKind["http_5xx"] != 4 || *l.FailureShare != 0.1 {
		t.Fatalf("load %+v", l)
	}
	if raw.Validity.Valid {
		t.Fatal("10 % failed, above validity.max_error_rate = 5 %, yet the result is valid")
	}
	found := false
	for _, f := range raw.Validity.Findings {
		if f.Code == "requests_failed" {
			found = f.Severity == "error" && strings.Contains(f.Message, "4 of 40 requests failed (10.0 %): http_5xx 4")
		}
	}
	if !found {
		t.Fatalf("no requests_failed error finding: %+v", raw.Validity.Findings)
	}
	if raw.Engine.Endpoint == "" || raw.Engine.Remote || raw.Energy.NotAttributed != "" {
		t.Fatalf("a server on this machine: engine %+v, energy not attributed %q", raw.Engine, raw.Energy.NotAttributed)
	}
	if l.TokenCount["server_ids"] != 36 || raw.LatencyMS.TTFT.Count != 36 {
		t.Fatalf("token count %v, %d TTFTs: want the 36 served requests counted from the server's ids", l.TokenCount, raw.LatencyMS.TTFT.Count)
	}
	for _, want := range []string{"4 of 40 requests failed (10.0 %): http_5xx 4", "INVALID"} {
		if !strings.Contains(r.stdout.String(), want) {
			t.Errorf("run summary lacks %q:\n%s", want, r.stdout.String())
		}
	}
	agg := readAggregated(t, res, exp)
	if agg.Validity.Valid || agg.Load == nil || agg.Load.Failed != 4 {
		t.Fatalf("aggregate: valid %v, load %+v", agg.Validity.Valid, agg.Load)
	}
}
