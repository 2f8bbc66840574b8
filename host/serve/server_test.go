package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

const modelName = "synthetic:fake"

type testServer struct {
	*httptest.Server
	srv *Server
	eng *fakeEngine
}

func newTestServer(t *testing.T, eng *fakeEngine, maxBatch, maxQueue int) *testServer {
	t.Helper()
	mode := Static
	ok, err := ProbeContinuous(context.Background(), eng)
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		mode = Continuous
	}
	srv, err := New(Options{Model: modelName, EngineName: "fake", Engine: eng, Tokenizer: fakeTokenizer{},
		ContextLength: 64, VocabSize: 256, Mode: mode, MaxBatch: maxBatch, MaxQueue: maxQueue})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.RunEngine(context.Background()) }()
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		srv.Drain()
		select {
		case err := <-done:
			if eng.failWith == nil && err != nil || eng.failWith != nil && !errors.Is(err, eng.failWith) {
				t.Errorf("engine loop: %v", err)
			}
		case <-time.After(time.Minute):
			t.Error("the engine loop did not stop after Drain")
		}
	})
	return &testServer{Server: hs, srv: srv, eng: eng}
}

func (ts *testServer) post(t *testing.T, path, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(ts.URL+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return 0, map[string]any{}
	}
	defer resp.Body.Close()
	var v map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &v); err != nil {
		t.Errorf("%s: not JSON: %v\n%s", path, err, b)
		return 0, map[string]any{}
	}
	return resp.StatusCode, v
}

// events reads a server-sent event stream: the data of each event, [DONE] included.
func events(t *testing.T, r io.Reader) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("not an SSE data line: %q", line)
		}
		out = append(out, data)
	}
	return out
}

func (ts *testServer) stream(t *testing.T, path, body string) []map[string]any {
	t.Helper()
	resp, err := http.Post(ts.URL+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream %s: %d %s: %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	evs := events(t, resp.Body)
	if len(evs) == 0 || evs[len(evs)-1] != "[DONE]" {
		t.Fatalf("the stream does not end with [DONE]: %q", evs)
	}
	var out []map[string]any
	for _, e := range evs[:len(evs)-1] {
		var v map[string]any
		if err := json.Unmarshal([]byte(e), &v); err != nil {
			t.Fatalf("chunk %q: %v", e, err)
		}
		out = append(out, v)
	}
	return out
}

func ids(v any) []int {
	var out []int
	for _, x := range v.([]any) {
		out = append(out, int(x.(float64)))
	}
	return out
}

func choice(v map[string]any) map[string]any { return v["choices"].([]any)[0].(map[string]any) }

// expected is what the fake engine generates for a prompt ending in last: n tokens.
func expected(last byte, n int) (string, []int) {
	var b strings.Builder
	var out []int
	for k := 1; k <= n; k++ {
		id := 'a' + (int(last)+k)%26
		b.WriteByte(byte(id))
		out = append(out, id)
	}
	return b.String(), out
}

func TestCompletionWhole(t *testing.T) {
	for _, continuous := range []bool{true, false} {
		t.Run(fmt.Sprintf("continuous=%v", continuous), func(t *testing.T) {
			ts := newTestServer(t, &fakeEngine{continuous: continuous}, 4, 8)
			code, v := ts.post(t, "/v1/completions", `{"model":"synthetic:fake","prompt":"hi","max_tokens":5,"temperature":0,"return_token_ids":true}`)
			if code != 200 {
				t.Fatalf("status %d: %v", code, v)
			}
			text, want := expected('i', 5)
			c := choice(v)
			if c["text"] != text || c["finish_reason"] != "length" || fmt.Sprint(ids(c["token_ids"])) != fmt.Sprint(want) ||
				fmt.Sprint(ids(c["prompt_token_ids"])) != fmt.Sprint([]int{'h', 'i'}) {
				t.Errorf("choice %v, want text %q ids %v", c, text, want)
			}
			u := v["usage"].(map[string]any)
			if u["prompt_tokens"] != 2.0 || u["completion_tokens"] != 5.0 || u["total_tokens"] != 7.0 {
				t.Errorf("usage %v", u)
			}
			if v["object"] != "text_completion" || v["model"] != modelName || !strings.HasPrefix(v["id"].(string), "cmpl-") {
				t.Errorf("envelope %v", v)
			}
			// Token ids as the prompt, EOS (finish_reason stop), no ids unless asked.
			code, v = ts.post(t, "/v1/completions", `{"model":"synthetic:fake","prompt":[69,70],"max_tokens":5,"temperature":0}`)
			c = choice(v)
			if code != 200 || c["finish_reason"] != "stop" || c["text"] != "t" || c["token_ids"] != nil {
				t.Errorf("EOS: %d %v", code, v)
			}
			if u := v["usage"].(map[string]any); u["completion_tokens"] != 2.0 {
				t.Errorf("EOS counts as a completion token: usage %v", u)
			}
			// ignore_eos goes on to max_tokens.
			_, v = ts.post(t, "/v1/completions", `{"model":"synthetic:fake","prompt":[69,70],"max_tokens":4,"temperature":0,"ignore_eos":true}`)
			if c := choice(v); c["finish_reason"] != "length" || c["text"] != "tzvw" {
				t.Errorf("ignore_eos: %v", v)
			}
		})
	}
}

func TestCompletionStream(t *testing.T) {
	ts := newTestServer(t, &fakeEngine{continuous: true}, 4, 8)
	chunks := ts.stream(t, "/v1/completions", `{"model":"synthetic:fake","prompt":"hi","max_tokens":6,"temperature":0,"stream":true,"stream_options":{"include_usage":true},"return_token_ids":true}`)
	text, want := expected('i', 6)
	if len(chunks) != 6+2 {
		t.Fatalf("want 6 token chunks, a finish chunk and a usage chunk, got %d: %v", len(chunks), chunks)
	}
	var got strings.Builder
	var gotIDs []int
	for i, c := range chunks[:6] {
		ch := choice(c)
		tids := ids(ch["token_ids"])
		if len(tids) != 1 || ch["finish_reason"] != nil {
			t.Errorf("chunk %d: %v", i, c)
		}
		if (i == 0) != (ch["prompt_token_ids"] != nil) {
			t.Errorf("chunk %d: prompt_token_ids only in the first chunk: %v", i, c)
		}
		got.WriteString(ch["text"].(string))
		gotIDs = append(gotIDs, tids...)
	}
	if got.String() != text || fmt.Sprint(gotIDs) != fmt.Sprint(want) {
		t.Errorf("streamed %q %v, want %q %v", got.String(), gotIDs, text, want)
	}
	if fr := choice(chunks[6])["finish_reason"]; fr != "length" {
		t.Errorf("finish chunk %v", chunks[6])
	}
	last := chunks[7]
	if len(last["choices"].([]any)) != 0 || last["usage"].(map[string]any)["completion_tokens"] != 6.0 {
		t.Errorf("usage chunk %v", last)
	}
	// Without include_usage no chunk carries usage.
	for _, c := range ts.stream(t, "/v1/completions", `{"model":"synthetic:fake","prompt":"hi","max_tokens":2,"temperature":0,"stream":true}`) {
		if c["usage"] != nil {
			t.Errorf("usage without include_usage: %v", c)
		}
	}
}

func TestStaticBatchingStreamsTheWholeResult(t *testing.T) {
	ts := newTestServer(t, &fakeEngine{continuous: false}, 4, 8)
	if ts.srv.o.Mode != Static {
		t.Fatalf("mode %s, want static for an engine without Serve", ts.srv.o.Mode)
	}
	chunks := ts.stream(t, "/v1/completions", `{"model":"synthetic:fake","prompt":"hi","max_tokens":3,"temperature":0,"stream":true,"return_token_ids":true}`)
	text, want := expected('i', 3)
	if len(chunks) != 2 || choice(chunks[0])["text"] != text || fmt.Sprint(ids(choice(chunks[0])["token_ids"])) != fmt.Sprint(want) {
		t.Errorf("static streaming: %v", chunks)
	}
	body := scrape(t, ts)
	if !strings.Contains(body, `batching="static"`) {
		t.Errorf("/metrics does not say static batching:\n%s", body)
	}
}

func TestChat(t *testing.T) {
	ts := newTestServer(t, &fakeEngine{continuous: true}, 4, 8)
	req := `{"model":"synthetic:fake","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"}]}],"max_tokens":3,"temperature":0,"return_token_ids":true`
	code, v := ts.post(t, "/v1/chat/completions", req+"}")
	prompt := ChatTemplate([]ChatTurn{{"system", "be brief"}, {"user", "hi"}})
	text, want := expected(prompt[len(prompt)-1], 3)
	c := choice(v)
	msg := c["message"].(map[string]any)
	if code != 200 || v["object"] != "chat.completion" || msg["role"] != "assistant" || msg["content"] != text || c["finish_reason"] != "length" ||
		fmt.Sprint(ids(c["token_ids"])) != fmt.Sprint(want) || len(ids(c["prompt_token_ids"])) != len(prompt) {
		t.Errorf("chat: %d %v (want %q)", code, v, text)
	}
	if u := v["usage"].(map[string]any); u["prompt_tokens"] != float64(len(prompt)) {
		t.Errorf("usage %v", u)
	}
	chunks := ts.stream(t, "/v1/chat/completions", req+`,"stream":true,"stream_options":{"include_usage":true}}`)
	var got strings.Builder
	for i, c := range chunks[:3] {
		d := choice(c)["delta"].(map[string]any)
		if (i == 0) != (d["role"] == "assistant") || c["object"] != "chat.completion.chunk" {
			t.Errorf("chunk %d: %v", i, c)
		}
		got.WriteString(d["content"].(string))
	}
	if got.String() != text || choice(chunks[3])["finish_reason"] != "length" || chunks[4]["usage"] == nil {
		t.Errorf("chat stream %q: %v", got.String(), chunks)
	}
	// The default max_tokens of a chat is the rest of the context (64 here).
	_, v = ts.post(t, "/v1/chat/completions", `{"model":"synthetic:fake","messages":[{"role":"user","content":"hi"}],"temperature":0}`)
	p := len(ChatTemplate([]ChatTurn{{"user", "hi"}}))
	if u := v["usage"].(map[string]any); u["completion_tokens"] != float64(64-p) {
		t.Errorf("chat without max_tokens: usage %v, want %d completion tokens", u, 64-p)
	}
}

func TestErrors(t *testing.T) {
	ts := newTestServer(t, &fakeEngine{continuous: true}, 4, 8)
	cases := []struct {
		path, body string
		status     int
		param      string
		msg        string
	}{
		{"/v1/completions", `{"model":`, 400, "", "not valid JSON"},
		{"/v1/completions", `{"model":"gpt-4","prompt":"hi"}`, 404, "model", `serves "synthetic:fake"`},
		{"/v1/completions", `{"prompt":"hi"}`, 400, "model", "model is required"},
		{"/v1/completions", `{"model":"synthetic:fake"}`, 400, "prompt", "prompt is required"},
		{"/v1/completions", `{"model":"synthetic:fake","prompt":["a","b"]}`, 400, "prompt", "one prompt per request"},
		{"/v1/completions", `{"model":"synthetic:fake","prompt":[1,300]}`, 400, "prompt", "prompt[1] = 300"},
		{"/v1/completions", `{"model":"synthetic:fake","prompt":"hi","max_tokens":0}`, 400, "max_tokens", "at least 1"},
		{"/v1/completions", `{"model":"synthetic:fake","prompt":"hi","max_tokens":63}`, 400, "max_tokens", "context of 64"},
		{"/v1/completions", `{"model":"synthetic:fake","prompt":"hi","temperature":3}`, 400, "temperature", "[0, 2]"},
		{"/v1/completions", `{"model":"synthetic:fake","prompt":"hi","temperature":1,"top_p":0}`, 400, "top_p", "(0, 1]"},
		{"/v1/completions", `{"model":"synthetic:fake","prompt":"hi","n":2}`, 400, "n", "n must be 1"},
		{"/v1/completions", `{"model":"synthetic:fake","prompt":"hi","stop":["\n"]}`, 400, "stop", "not supported"},
		{"/v1/chat/completions", `{"model":"synthetic:fake","messages":[]}`, 400, "messages", "must not be empty"},
		{"/v1/chat/completions", `{"model":"synthetic:fake","messages":[{"role":"robot","content":"x"}]}`, 400, "messages[0].role", "valid roles"},
		{"/v1/embeddings", `{}`, 404, "", "not an endpoint"},
	}
	for _, c := range cases {
		code, v := ts.post(t, c.path, c.body)
		e, _ := v["error"].(map[string]any)
		if code != c.status || e == nil || !strings.Contains(e["message"].(string), c.msg) || (c.param != "" && e["param"] != c.param) || e["type"] == nil {
			t.Errorf("%s %s: %d %v, want %d param %q message with %q", c.path, c.body, code, v, c.status, c.param, c.msg)
		}
	}
	if n := testutil.ToFloat64(ts.srv.m.requests.WithLabelValues("400", "none")); n != 13 {
		t.Errorf("requests_total{status=400} = %v, want 13", n)
	}
}

func TestQueueFullIs429(t *testing.T) {
	// One runs (held: the fake waits for 3 requests before its first step), one waits, the
	// third is refused.
	eng := &fakeEngine{continuous: true, waitFor: 3, wake: make(chan struct{})}
	ts := newTestServer(t, eng, 1, 1)
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _ = ts.post(t, "/v1/completions", `{"model":"synthetic:fake","prompt":"hi","max_tokens":2,"temperature":0}`)
		}()
		waitFor(t, func() bool {
			ts.srv.sched.mu.Lock()
			defer ts.srv.sched.mu.Unlock()
			return len(ts.srv.sched.jobs)+len(ts.srv.sched.queue) == i+1
		})
	}
	code, v := ts.post(t, "/v1/completions", `{"model":"synthetic:fake","prompt":"hi","max_tokens":2,"temperature":0}`)
	if e, _ := v["error"].(map[string]any); code != 429 || e["code"] != "queue_full" {
		t.Errorf("third request: %d %v, want 429 queue_full", code, v)
	}
	// Let the held requests run.
	eng.mu.Lock()
	eng.waitFor = 0
	eng.mu.Unlock()
	close(eng.wake)
	wg.Wait()
	if codes[0] != 200 || codes[1] != 200 {
		t.Errorf("the queued requests answered %v", codes)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute) // a hang guard only
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within a minute")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestClientDisconnectCancels(t *testing.T) {
	eng := &fakeEngine{continuous: true, stepDelay: 2 * time.Millisecond}
	ts := newTestServer(t, eng, 4, 8)
	for _, stream := range []bool{true, false} {
		ctx, cancel := context.WithCancel(context.Background())
		body := fmt.Sprintf(`{"model":"synthetic:fake","prompt":"hi","max_tokens":60,"temperature":0,"ignore_eos":true,"stream":%v}`, stream)
		req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/completions", strings.NewReader(body))
		errc := make(chan error, 1)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				// Read one chunk, then go away.
				_, err = bufio.NewReader(resp.Body).ReadString('\n')
				cancel()
				resp.Body.Close()
			}
			errc <- err
		}()
		if !stream {
			waitFor(t, func() bool { eng.mu.Lock(); defer eng.mu.Unlock(); return eng.received > 1 })
			cancel()
		}
		<-errc
		want := 1
		if !stream {
			want = 2
		}
		waitFor(t, func() bool { eng.mu.Lock(); defer eng.mu.Unlock(); return len(eng.cancelled) == want })
		waitFor(t, func() bool {
			return testutil.ToFloat64(ts.srv.m.requests.WithLabelValues("499", "cancelled")) == float64(want)
		})
		waitFor(t, func() bool { return testutil.ToFloat64(ts.srv.m.running) == 0 })
	}
	// The generated tokens of the cancelled requests are fewer than they asked for.
	if n := testutil.ToFloat64(ts.srv.m.genToks); n >= 120 {
		t.Errorf("%v tokens generated: the cancelled requests ran to the end", n)
	}
}

func scrape(t *testing.T, ts *testServer) string {
	t.Helper()
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestMetricsUnderConcurrency(t *testing.T) {
	const n = 6
	ts := newTestServer(t, &fakeEngine{continuous: true, waitFor: n}, 8, 16)
	var wg sync.WaitGroup
	outs := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b strings.Builder
			for _, c := range ts.stream(t, "/v1/completions", `{"model":"synthetic:fake","prompt":"hi","max_tokens":5,"temperature":0,"stream":true}`) {
				b.WriteString(choice(c)["text"].(string))
			}
			outs[i] = b.String()
		}()
	}
	wg.Wait()
	text, _ := expected('i', 5)
	for i, o := range outs {
		if o != text {
			t.Errorf("request %d: %q, want %q (the single-request output)", i, o, text)
		}
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(scrape(t, ts)))
	if err != nil {
		t.Fatal(err)
	}
	h := fams["lemctl_serve_batch_size"].GetMetric()[0].GetHistogram()
	if mean := h.GetSampleSum() / float64(h.GetSampleCount()); mean != n {
		t.Errorf("mean batch size %v, want %d (all requests ran together)", mean, n)
	}
	counter := func(name string) float64 { return fams[name].GetMetric()[0].GetCounter().GetValue() }
	if counter("lemctl_serve_generation_tokens_total") != 5*n || counter("lemctl_serve_prompt_tokens_total") != 2*n {
		t.Errorf("tokens: %v generated, %v prompt", counter("lemctl_serve_generation_tokens_total"), counter("lemctl_serve_prompt_tokens_total"))
	}
	if got := fams["lemctl_serve_time_to_first_token_seconds"].GetMetric()[0].GetHistogram().GetSampleCount(); got != n {
		t.Errorf("TTFT samples %d, want %d", got, n)
	}
	if got := fams["lemctl_serve_inter_token_latency_seconds"].GetMetric()[0].GetHistogram().GetSampleCount(); got != 4*n {
		t.Errorf("ITL samples %d, want %d", got, 4*n)
	}
	for _, m := range fams["lemctl_serve_requests_total"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["status"] != "200" || labels["finish_reason"] != "length" || m.GetCounter().GetValue() != n {
			t.Errorf("requests_total %v = %v", labels, m.GetCounter().GetValue())
		}
	}
	if fams["lemctl_serve_queue_depth"].GetMetric()[0].GetGauge().GetValue() != 0 {
		t.Error("queue depth not 0 at rest")
	}
}

func TestStaticBatchesGroupWaitingRequests(t *testing.T) {
	eng := &fakeEngine{continuous: false}
	ts := newTestServer(t, eng, 3, 16)
	// Hold the engine loop: queue 5 requests before it looks (the scheduler's lock).
	ts.srv.sched.mu.Lock()
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, v := ts.post(t, "/v1/completions", `{"model":"synthetic:fake","prompt":"hi","max_tokens":2,"temperature":0}`); code != 200 {
				t.Errorf("%d %v", code, v)
			}
		}()
	}
	ts.srv.sched.mu.Unlock()
	wg.Wait()
	eng.mu.Lock()
	defer eng.mu.Unlock()
	total, most := 0, 0
	for _, b := range eng.generates {
		total += b
		most = max(most, b)
	}
	if total != 5 || most > 3 {
		t.Errorf("Generate batches %v: want 5 requests in batches of at most 3", eng.generates)
	}
}

func TestTokenizeDetokenizeModels(t *testing.T) {
	ts := newTestServer(t, &fakeEngine{continuous: true}, 4, 8)
	code, v := ts.post(t, "/tokenize", `{"model":"synthetic:fake","prompt":"hi"}`)
	if code != 200 || fmt.Sprint(ids(v["tokens"])) != "[104 105]" || v["count"] != 2.0 || v["max_model_len"] != 64.0 {
		t.Errorf("tokenize: %d %v", code, v)
	}
	code, v = ts.post(t, "/detokenize", `{"model":"synthetic:fake","tokens":[104,105]}`)
	if code != 200 || v["prompt"] != "hi" {
		t.Errorf("detokenize: %d %v", code, v)
	}
	code, v = ts.post(t, "/detokenize", `{"tokens":[104,1000]}`)
	if e, _ := v["error"].(map[string]any); code != 400 || e["param"] != "tokens" {
		t.Errorf("detokenize out of vocabulary: %d %v", code, v)
	}
	resp, err := http.Get(ts.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct {
		Data []struct {
			ID     string `json:"id"`
			Object string `json:"object"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || len(m.Data) != 1 || m.Data[0].ID != modelName || m.Data[0].Object != "model" {
		t.Errorf("/v1/models: %v %+v", err, m)
	}
}

func TestEngineFailureFailsRequests(t *testing.T) {
	eng := &fakeEngine{continuous: true, failWith: errEngineGone}
	ts := newTestServer(t, eng, 4, 8)
	code, v := ts.post(t, "/v1/completions", `{"model":"synthetic:fake","prompt":"hi","max_tokens":2,"temperature":0}`)
	if e, _ := v["error"].(map[string]any); code != 500 || !strings.Contains(e["message"].(string), "engine plugin exited") {
		t.Errorf("%d %v", code, v)
	}
	// Later requests are refused with the same error.
	if code, _ := ts.post(t, "/v1/completions", `{"model":"synthetic:fake","prompt":"hi","max_tokens":2,"temperature":0}`); code != 500 {
		t.Errorf("after the failure: %d", code)
	}
}

func TestRunShutsDownGracefully(t *testing.T) {
	eng := &fakeEngine{continuous: true, stepDelay: time.Millisecond}
	srv, err := New(Options{Model: modelName, EngineName: "fake", Engine: eng, Tokenizer: fakeTokenizer{}, Mode: Continuous, MaxBatch: 4, MaxQueue: 8})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ctx, stop := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- srv.Run(ctx, ln, time.Minute) }()
	type answer struct {
		code int
		body string
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := http.Post(url+"/v1/completions", "application/json", strings.NewReader(`{"model":"synthetic:fake","prompt":"hi","max_tokens":40,"temperature":0,"ignore_eos":true}`))
		if err != nil {
			got <- answer{0, err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- answer{resp.StatusCode, string(b)}
	}()
	waitFor(t, func() bool { eng.mu.Lock(); defer eng.mu.Unlock(); return eng.received == 1 })
	stop()
	a := <-got
	if a.code != 200 || !strings.Contains(a.body, `"completion_tokens":40`) {
		t.Errorf("the running request did not finish: %d %s", a.code, a.body)
	}
	select {
	case err := <-runErr:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return after the shutdown")
	}
	if _, err := http.Post(url+"/v1/completions", "application/json", strings.NewReader(`{}`)); err == nil {
		t.Error("the server still accepts connections after the shutdown")
	}
}
