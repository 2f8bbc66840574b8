package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/gonum/stat"

	"github.com/lemctl/lemctl/sdk"
)

// The gaps the plugin measures between tokens are the gaps at which the server sent them, read
// on the server's own send times (not its sleep target), for four concurrent streams of one token
// per chunk every 20 ms. Every token arrives after the server sent it (strict). The inter-token
// latencies must follow the server's gaps within 1 ms: in the median, and for at least 80 % of
// the gaps, since on a loaded machine a scheduling hiccup can delay one read by more (the
// deviations are logged). A plugin that stamps anything but the chunk's arrival — the end of the
// stream, a buffered batch of events — is off by far more in most gaps. The batch is tried up to
// three times.
func TestInterTokenLatencyFollowsServerPace(t *testing.T) {
	f := newFake(t)
	f.gap = 20 * time.Millisecond
	e := loadedEngine(t, f, nil)
	const tokens = 15
	var verdict string
	for attempt := 1; attempt <= 3; attempt++ {
		var prompts []sdk.Prompt
		for i := range 4 {
			prompts = append(prompts, sdk.Prompt{ID: fmt.Sprint(i), Text: fmt.Sprintf("itl%d-%d", attempt, i)})
		}
		res, bt := generate(t, e, prompts, sdk.Decoding{MaxNewTokens: tokens, Greedy: true})
		var devs []float64
		var off []string
		for _, p := range prompts {
			r := res[p.ID]
			sent := f.sentTimes(p.Text)
			if r.FinishReason != "length" || r.TokenCount != CountServerIDs || len(r.OutputIDs) != tokens || len(r.TokenMonoNS) != tokens || len(sent) != tokens || len(r.ChunkMonoNS) != tokens {
				t.Fatalf("request %s: finish %q, count %q, %d ids, %d token times, %d chunk times, server sent %d (want length, server_ids, %d each)",
					p.ID, r.FinishReason, r.TokenCount, len(r.OutputIDs), len(r.TokenMonoNS), len(r.ChunkMonoNS), len(sent), tokens)
			}
			if r.StartMonoNS <= 0 || r.StartMonoNS > sent[0] {
				t.Fatalf("request %s: start %d after the server's first send %d", p.ID, r.StartMonoNS, sent[0])
			}
			for i := range tokens {
				if r.TokenMonoNS[i] < sent[i] {
					t.Fatalf("request %s token %d: arrived at %d, before the server sent it at %d", p.ID, i, r.TokenMonoNS[i], sent[i])
				}
			}
			for i := 1; i < tokens; i++ {
				itl, gap := r.TokenMonoNS[i]-r.TokenMonoNS[i-1], sent[i]-sent[i-1]
				d := math.Abs(float64(itl-gap)) / 1e6
				devs = append(devs, d)
				if d > 1 {
					off = append(off, fmt.Sprintf("%s/%d: ITL %.3f ms, server gap %.3f ms", p.ID, i, float64(itl)/1e6, float64(gap)/1e6))
				}
			}
		}
		if bt.Requests != 4 || bt.OutputTokens != 4*tokens || bt.InputTokens != 4*len("itl1-0") || bt.Steps != tokens-1 ||
			!(bt.StartMonoNS <= bt.FirstTokenMonoNS && bt.FirstTokenMonoNS <= bt.EndMonoNS) {
			t.Fatalf("batch timing %+v", *bt)
		}
		sort.Float64s(devs)
		median := stat.Quantile(0.5, stat.Empirical, devs, nil)
		verdict = fmt.Sprintf("attempt %d: median |ITL - server gap| %.3f ms, %d of %d gaps off by more than 1 ms %v", attempt, median, len(off), len(devs), off)
		t.Log(verdict)
		if median <= 1 && len(off)*5 <= len(devs) {
			return
		}
	}
	t.Fatalf("the measured inter-token latencies do not follow the server's pace: %s", verdict)
}

// Failures are per-request results, each counted by its kind, never an error of the batch.
func TestFailuresAreCountedByKind(t *testing.T) {
	f := newFake(t)
	e := loadedEngine(t, f, map[string]any{KeyRequestTimeout: "2s"})
	want := map[string]int{"": 31, KindHTTP5xx: 4, KindHTTP429: 2, KindHTTP4xx: 1, KindDroppedStream: 1, KindTimeout: 1}
	var prompts []sdk.Prompt
	for i := range 40 {
		text := "hello"
		switch {
		case i%10 == 3: // a known 10 %
			text = "fail500"
		case i == 5 || i == 15:
			text = "fail429"
		case i == 7:
			text = "fail400"
		case i == 9:
			text = "drop"
		case i == 11:
			text = "hang"
		}
		prompts = append(prompts, sdk.Prompt{ID: fmt.Sprintf("r%02d", i), Text: text})
	}
	res, bt := generate(t, e, prompts, sdk.Decoding{MaxNewTokens: 5, Greedy: true})
	got := map[string]int{}
	for _, p := range prompts {
		r := res[p.ID]
		got[r.ErrorKind]++
		failed := r.ErrorKind != ""
		if failed != (r.FinishReason == "error") || failed != (r.Error != "") {
			t.Errorf("request %s (%s): finish %q, kind %q, error %q", p.ID, p.Text, r.FinishReason, r.ErrorKind, r.Error)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("results by error kind %v, want %v", got, want)
	}
	if r := res["r03"]; !strings.Contains(r.Error, "HTTP 500") || !strings.Contains(r.Error, "engine crashed") {
		t.Errorf("a 500's message: %q", r.Error)
	}
	if r := res["r09"]; r.TokenCount != CountServerIDs || len(r.OutputIDs) != 2 || !strings.Contains(r.Error, "without a finish reason") {
		t.Errorf("a dropped stream keeps what it received: %d ids counted %q, error %q", len(r.OutputIDs), r.TokenCount, r.Error)
	}
	if r := res["r11"]; !strings.Contains(r.Error, "request_timeout = 2s") {
		t.Errorf("a timeout's message: %q", r.Error)
	}
	if bt.Requests != 40 || bt.OutputTokens != 31*5+2 {
		t.Errorf("batch timing counts %d requests, %d output tokens", bt.Requests, bt.OutputTokens)
	}

	// No connection at all: every request is a failure of kind connect.
	f.srv.Close()
	res, _ = generate(t, e, prompts[:3], sdk.Decoding{MaxNewTokens: 2})
	for id, r := range res {
		if r.ErrorKind != KindConnect || r.FinishReason != "error" {
			t.Errorf("request %s to a closed server: finish %q kind %q (%s)", id, r.FinishReason, r.ErrorKind, r.Error)
		}
	}
}

// Without ids the output is counted from usage, and without usage by the tokenizer; each count
// says how it was made, and token times exist only where the tokens per chunk are known.
func TestTokenCountSources(t *testing.T) {
	f := newFake(t)
	f.sendIDs = false
	e := loadedEngine(t, f, nil)
	res, _ := generate(t, e, []sdk.Prompt{{ID: "u", Text: "hi there"}}, sdk.Decoding{MaxNewTokens: 6, Greedy: true, ReturnText: true})
	r := res["u"]
	if r.TokenCount != CountUsage || r.Tokens() != 6 || len(r.OutputIDs) != 0 || len(r.TokenMonoNS) != 6 || len(r.ChunkMonoNS) != 6 || r.InputTokens != 8 || r.Text != "aaaaaa" {
		t.Fatalf("usage count: %q, %d tokens, %d ids, %d token times, %d chunks, %d input, text %q", r.TokenCount, r.Tokens(), len(r.OutputIDs), len(r.TokenMonoNS), len(r.ChunkMonoNS), r.InputTokens, r.Text)
	}

	f.sendUsage = false
	f.tokenText = "ab" // two tokens of the server's tokenizer per chunk
	res, _ = generate(t, e, []sdk.Prompt{{ID: "t", Text: "hi there", IDs: []int32{104, 105, 32}}}, sdk.Decoding{MaxNewTokens: 6, Greedy: true})
	r = res["t"]
	if r.TokenCount != CountTokenizer || r.Tokens() != 12 || len(r.TokenMonoNS) != 0 || len(r.ChunkMonoNS) != 6 || r.InputTokens != 3 || r.Text != "" {
		t.Fatalf("tokenizer count: %q, %d tokens, %d token times, %d chunks, %d input, text %q", r.TokenCount, r.Tokens(), len(r.TokenMonoNS), len(r.ChunkMonoNS), r.InputTokens, r.Text)
	}
	if ids, _ := f.bodies[len(f.bodies)-1]["prompt"].([]any); len(ids) != 3 {
		t.Errorf("token-id prompt sent as %v, want the int array", f.bodies[len(f.bodies)-1]["prompt"])
	}

	none := loadedEngine(t, f, map[string]any{KeyTokenizer: TokenizerNone})
	res, _ = generate(t, none, []sdk.Prompt{{ID: "n", Text: "hi"}}, sdk.Decoding{MaxNewTokens: 2})
	if r := res["n"]; r.FinishReason != "error" || r.ErrorKind != KindEngine || !strings.Contains(r.Error, "tokenizer") {
		t.Fatalf("nothing to count with: finish %q kind %q error %q", r.FinishReason, r.ErrorKind, r.Error)
	}
}

// The key goes from the environment variable to the Authorization header, and nowhere else, even
// when a server echoes it in an error.
func TestAPIKeyFromEnvironmentNeverShown(t *testing.T) {
	const secret = "sk-test-0123456789abcdef"
	t.Setenv("LEM_TEST_OPENAI_KEY", secret)
	f := newFake(t)
	f.key = secret
	e := NewEngine()
	configure(t, map[string]any{KeyBaseURL: f.base(), KeyAPIKeyEnv: "LEM_TEST_OPENAI_KEY"}, e.SetSettings)
	lr, err := e.Load(context.Background(), sdk.LoadRequest{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Unload(context.Background())
	res, _ := generate(t, e, []sdk.Prompt{{ID: "a", Text: "hello"}}, sdk.Decoding{MaxNewTokens: 3})
	for _, h := range f.auth {
		if h != "Bearer "+secret {
			t.Fatalf("the server saw Authorization %q", h)
		}
	}
	// A server that refuses the key and echoes it back.
	f.key = "another"
	bad, _ := generate(t, e, []sdk.Prompt{{ID: "b", Text: "hello"}}, sdk.Decoding{MaxNewTokens: 3})
	if r := bad["b"]; r.ErrorKind != KindHTTP4xx || !strings.Contains(r.Error, "HTTP 401") || !strings.Contains(r.Error, "[api key]") {
		t.Fatalf("refused key: kind %q error %q", r.ErrorKind, r.Error)
	}
	_, loadErr := NewLoaderWith(t, map[string]any{KeyBaseURL: f.base(), KeyAPIKeyEnv: "LEM_TEST_OPENAI_KEY"}).Resolve(context.Background(), "tiny")
	if loadErr == nil || !strings.Contains(loadErr.Error(), "HTTP 401") || !strings.Contains(loadErr.Error(), KeyAPIKeyEnv) {
		t.Fatalf("Resolve with a refused key: %v", loadErr)
	}
	all, _ := json.Marshal([]any{lr, res, bad, loadErr.Error()})
	if strings.Contains(string(all), secret) || strings.Contains(string(all), "sk-test") {
		t.Fatalf("the key appears in the plugin's output: %s", all)
	}

	t.Setenv("LEM_TEST_OPENAI_KEY", "")
	e2 := NewEngine()
	configure(t, map[string]any{KeyBaseURL: f.base(), KeyAPIKeyEnv: "LEM_TEST_OPENAI_KEY"}, e2.SetSettings)
	if _, err := e2.Load(context.Background(), sdk.LoadRequest{}); !errors.Is(err, sdk.ErrFailedPrecondition) || !strings.Contains(err.Error(), "LEM_TEST_OPENAI_KEY") {
		t.Fatalf("Load with the key's variable empty: %v", err)
	}
}

// Load checks the model against the server's list, names base_url and the models listed when it
// is not there, and reports what the server says about the model.
func TestLoadChecksTheServedModel(t *testing.T) {
	f := newFake(t)
	ctx := context.Background()
	e := NewEngine()
	configure(t, map[string]any{KeyBaseURL: f.base() + "/"}, e.SetSettings)
	lr, err := e.Load(ctx, sdk.LoadRequest{Artifact: sdk.Artifact{Reference: "tiny", Format: FormatServed}})
	if err != nil {
		t.Fatal(err)
	}
	if lr.Endpoint != f.base() || lr.Remote || lr.ExecutionProvider != "local server" || lr.Served["id"] != "tiny" || lr.Served["owned_by"] != "lemctl-test" ||
		lr.Served["max_model_len"] != "2048" || lr.RuntimeVersions["server"] != "fake-1.0" || lr.LoadNS <= 0 {
		t.Fatalf("load result %+v", *lr)
	}
	if _, err := e.Load(ctx, sdk.LoadRequest{}); !errors.Is(err, sdk.ErrFailedPrecondition) {
		t.Fatalf("a second Load: %v", err)
	}
	_ = e.Unload(ctx)

	// The served artifact names the model when engine.model is not set; a model the server does
	// not list is an error naming base_url and what it lists.
	_, err = e.Load(ctx, sdk.LoadRequest{Artifact: sdk.Artifact{Reference: "big", Format: FormatServed}})
	if !errors.Is(err, sdk.ErrNotFound) || !strings.Contains(err.Error(), `model.ref "big"`) || !strings.Contains(err.Error(), f.base()) || !strings.Contains(err.Error(), `["tiny"]`) {
		t.Fatalf("Load of a model not served: %v", err)
	}
	configure(t, map[string]any{KeyBaseURL: f.base(), KeyModel: "big"}, e.SetSettings)
	if _, err := e.Load(ctx, sdk.LoadRequest{}); err == nil || !strings.Contains(err.Error(), `engine.model "big"`) {
		t.Fatalf("Load of engine.model not served: %v", err)
	}
	f.models = append(f.models, map[string]any{"id": "other"})
	configure(t, map[string]any{KeyBaseURL: f.base()}, e.SetSettings)
	if _, err := e.Load(ctx, sdk.LoadRequest{}); !errors.Is(err, sdk.ErrInvalidArgument) || !strings.Contains(err.Error(), `["other", "tiny"]`) || !strings.Contains(err.Error(), "engine.model") {
		t.Fatalf("Load without a model name from a server of two: %v", err)
	}
	if _, err := NewEngine().Load(ctx, sdk.LoadRequest{}); !errors.Is(err, sdk.ErrFailedPrecondition) || !strings.Contains(err.Error(), KeyBaseURL) {
		t.Fatalf("Load without base_url: %v", err)
	}
	f.srv.Close()
	configure(t, map[string]any{KeyBaseURL: f.base(), KeyModel: "tiny"}, e.SetSettings)
	if _, err := e.Load(ctx, sdk.LoadRequest{}); !errors.Is(err, sdk.ErrUnavailable) || !strings.Contains(err.Error(), f.base()+"/models") {
		t.Fatalf("Load with the server down: %v", err)
	}
}

func TestBadConfig(t *testing.T) {
	for _, tc := range []struct {
		table map[string]any
		key   string
	}{
		{map[string]any{KeyBaseURL: "ftp://x/v1"}, KeyBaseURL},
		{map[string]any{KeyBaseURL: "http://user:pw@x/v1"}, KeyBaseURL},
		{map[string]any{KeyAPIKeyEnv: "sk-abc def"}, KeyAPIKeyEnv},
		{map[string]any{KeyModel: " "}, KeyModel},
		{map[string]any{KeyTokenizer: "synthetic:"}, KeyTokenizer},
	} {
		cfg, errs := sdk.ValidateConfig(Schema(), tc.table)
		if len(errs) == 0 {
			_, errs = ParseSettings(context.Background(), cfg)
		}
		if len(errs) != 1 || errs[0].Key != tc.key {
			t.Errorf("config %v: errors %v, want one on %s", tc.table, errs, tc.key)
		}
	}
}

// Serve runs each request as it arrives; a cancel aborts one; every request gets one Done and
// every chunk that carries output one Step.
func TestServe(t *testing.T) {
	f := newFake(t)
	f.gap = 5 * time.Millisecond
	e := loadedEngine(t, f, nil)
	in := make(chan sdk.ServeRequest)
	var steps, perStep int
	done := map[string]sdk.RequestResult{}
	errc := make(chan error, 1)
	go func() {
		errc <- e.Serve(context.Background(), sdk.ServeOptions{StepEvents: true}, in, func(ev sdk.ServeEvent) error {
			switch {
			case ev.Step != nil:
				steps++
				perStep += len(ev.Step.Tokens)
				if ev.Step.BatchSize < 1 || ev.Step.MonoNS <= 0 {
					t.Errorf("step %+v", *ev.Step)
				}
			case ev.Done != nil:
				done[ev.Done.ID] = *ev.Done
			}
			return nil
		})
	}()
	dec := sdk.Decoding{MaxNewTokens: 8, Greedy: true}
	in <- sdk.ServeRequest{Prompt: sdk.Prompt{ID: "a", Text: "alpha"}, Decoding: dec}
	in <- sdk.ServeRequest{Prompt: sdk.Prompt{ID: "b", Text: "beta"}, Decoding: dec}
	in <- sdk.ServeRequest{Prompt: sdk.Prompt{ID: "h", Text: "hang"}, Decoding: dec}
	in <- sdk.ServeRequest{Prompt: sdk.Prompt{ID: "h"}, Cancel: true}
	close(in)
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Serve did not return after its input closed")
	}
	if len(done) != 3 || done["a"].FinishReason != "length" || done["b"].Tokens() != 8 || done["h"].FinishReason != "cancelled" {
		t.Fatalf("done: %+v", done)
	}
	if steps != 16 || perStep != 16 {
		t.Fatalf("%d steps with %d tokens, want 16 (one per chunk of a and b)", steps, perStep)
	}

	// A duplicate id is refused; Serve before Load is a precondition error.
	in = make(chan sdk.ServeRequest, 2)
	in <- sdk.ServeRequest{Prompt: sdk.Prompt{ID: "x", Text: "hang"}, Decoding: dec}
	in <- sdk.ServeRequest{Prompt: sdk.Prompt{ID: "x", Text: "hang"}, Decoding: dec}
	if err := e.Serve(context.Background(), sdk.ServeOptions{}, in, func(sdk.ServeEvent) error { return nil }); !errors.Is(err, sdk.ErrInvalidArgument) {
		t.Fatalf("duplicate id: %v", err)
	}
	if err := NewEngine().Serve(context.Background(), sdk.ServeOptions{}, in, nil); !errors.Is(err, sdk.ErrFailedPrecondition) {
		t.Fatalf("Serve before Load: %v", err)
	}
}

// api = "chat" sends the text as a user message; a prompt of ids alone is decoded first.
func TestChat(t *testing.T) {
	f := newFake(t)
	e := loadedEngine(t, f, map[string]any{KeyAPI: APIChat})
	res, _ := generate(t, e, []sdk.Prompt{{ID: "t", Text: "hello", IDs: []int32{1, 2}}, {ID: "i", IDs: []int32{104, 105}}}, sdk.Decoding{MaxNewTokens: 3, ReturnText: true})
	for id, r := range res {
		if r.FinishReason != "length" || r.Tokens() != 3 || r.Text != "aaa" || len(r.ChunkMonoNS) != 3 {
			t.Errorf("chat request %s: %+v", id, r)
		}
	}
	if r := res["i"]; r.InputTokens != 2 {
		t.Errorf("decoded prompt counted %d input tokens, want 2", r.InputTokens)
	}
	var contents []string
	for _, b := range f.bodies {
		msgs := b["messages"].([]any)
		contents = append(contents, msgs[0].(map[string]any)["content"].(string))
	}
	if strings.Join(contents, ",") != "hello,hi" && strings.Join(contents, ",") != "hi,hello" {
		t.Errorf("chat messages sent: %v", contents)
	}
}
