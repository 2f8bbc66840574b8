package openai

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/hostclient"
	"github.com/lemctl/lemctl/sdk/plugintest"
)

var badConfigs = []plugintest.BadConfig{
	{Table: map[string]any{KeyAPI: "responses"}, Key: KeyAPI},
	{Table: map[string]any{KeyBaseURL: "ftp://host/v1"}, Key: KeyBaseURL},
	{Table: map[string]any{KeyAPIKeyEnv: "sk-not a name"}, Key: KeyAPIKeyEnv},
	{Table: map[string]any{KeyRequestTimeout: "soon"}, Key: KeyRequestTimeout},
	{Table: map[string]any{"max_error_rate": 0.1}, Key: "max_error_rate"},
}

// The sdk's conformance suite, over an in-process gRPC connection, against a fake server.
func TestConformance(t *testing.T) {
	f := newFake(t)
	plugintest.Run(t, New(), plugintest.Options{
		Config:     map[string]any{KeyBaseURL: f.base()},
		BadConfigs: badConfigs,
		Loader:     plugintest.LoaderOptions{Reference: "tiny"},
	})
}

// The real binary, started the way lemctl starts it: the conformance suite (what `lemctl plugins
// check` runs), then a served model resolved, loaded, generated and served over gRPC, failures
// arriving as results.
func TestPluginBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin binary")
	}
	bin := filepath.Join(t.TempDir(), "lem-plugin-openai")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/lem-plugin-openai").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f := newFake(t)
	f.gap = time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	check, err := hostclient.Open(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	rep := plugintest.CheckClient(ctx, check, plugintest.Options{Config: map[string]any{KeyBaseURL: f.base()}, BadConfigs: badConfigs,
		Loader: plugintest.LoaderOptions{Reference: "tiny"}})
	check.Close()
	for _, fl := range rep.Failures {
		t.Errorf("conformance: %s", fl)
	}
	for _, want := range []string{plugintest.CheckLoader, plugintest.CheckEngine, plugintest.CheckEngineTokens} {
		if !strings.Contains(strings.Join(rep.Checks, ","), want) {
			t.Errorf("the suite did not run %s (ran %v)", want, rep.Checks)
		}
	}

	const secret = "sk-binary-test-secret"
	f.key = secret
	c, err := hostclient.Open(ctx, bin, hostclient.WithEnv("LEM_TEST_KEY="+secret))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if info := c.Info(); info.Name != Name || !info.Serves(sdk.KindLoader) || !info.Serves(sdk.KindEngine) {
		t.Fatalf("info %+v", info)
	}
	if errs, err := c.Configure(ctx, map[string]any{KeyBaseURL: f.base(), KeyAPIKeyEnv: "LEM_TEST_KEY"}); err != nil || len(errs) > 0 {
		t.Fatalf("Configure: %v %v", errs, err)
	}
	a, err := c.Loader().Resolve(ctx, "tiny")
	if err != nil || a.Format != sdk.FormatServed || a.Metadata[MetaBaseURL] != f.base() {
		t.Fatalf("Resolve: %+v, %v", a, err)
	}
	ids, err := c.Loader().Tokenize(ctx, "tiny", []string{"hello"})
	if err != nil || len(ids[0]) != 5 {
		t.Fatalf("Tokenize: %v, %v", ids, err)
	}
	lr, err := c.Engine().Load(ctx, sdk.LoadRequest{Artifact: *a})
	if err != nil || lr.Endpoint != f.base() || lr.Remote || lr.Served["id"] != "tiny" {
		t.Fatalf("Load: %+v, %v", lr, err)
	}
	prompts := []sdk.Prompt{{ID: "ok", Text: "hello", IDs: ids[0]}, {ID: "bad", Text: "fail500"}, {ID: "drop", Text: "drop"}}
	got := map[string]sdk.RequestResult{}
	bt, err := c.Engine().Generate(ctx, sdk.GenerateRequest{Prompts: prompts, Decoding: sdk.Decoding{MaxNewTokens: 4, Greedy: true}},
		func(r sdk.RequestResult) error { got[r.ID] = r; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if r := got["ok"]; r.FinishReason != "length" || len(r.OutputIDs) != 4 || len(r.TokenMonoNS) != 4 || len(r.ChunkMonoNS) != 4 || r.TokenCount != CountServerIDs || r.InputTokens != 5 {
		t.Errorf("ok over gRPC: %+v", r)
	}
	if got["bad"].ErrorKind != KindHTTP5xx || got["drop"].ErrorKind != KindDroppedStream || bt.Requests != 3 {
		t.Errorf("failures over gRPC: %q %q, batch %+v", got["bad"].ErrorKind, got["drop"].ErrorKind, bt)
	}

	ce, ok := c.Engine().(sdk.ContinuousEngine)
	if !ok {
		t.Fatal("the host's engine client is not a ContinuousEngine")
	}
	in := make(chan sdk.ServeRequest, 3)
	in <- sdk.ServeRequest{Prompt: sdk.Prompt{ID: "s1", Text: "one"}, Decoding: sdk.Decoding{MaxNewTokens: 3}}
	in <- sdk.ServeRequest{Prompt: sdk.Prompt{ID: "s2", Text: "hang"}, Decoding: sdk.Decoding{MaxNewTokens: 3}}
	in <- sdk.ServeRequest{Prompt: sdk.Prompt{ID: "s2"}, Cancel: true}
	close(in)
	done := map[string]sdk.RequestResult{}
	steps := 0
	err = ce.Serve(ctx, sdk.ServeOptions{StepEvents: true}, in, func(ev sdk.ServeEvent) error {
		if ev.Step != nil {
			steps++
		}
		if ev.Done != nil {
			done[ev.Done.ID] = *ev.Done
		}
		return nil
	})
	if err != nil || done["s1"].Tokens() != 3 || done["s2"].FinishReason != "cancelled" || steps != 3 {
		t.Fatalf("Serve over gRPC: %v, done %+v, %d steps", err, done, steps)
	}
	if err := c.Engine().Unload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Engine().Generate(ctx, sdk.GenerateRequest{Prompts: prompts[:1], Decoding: sdk.Decoding{MaxNewTokens: 1}}, func(sdk.RequestResult) error { return nil }); !errors.Is(err, sdk.ErrFailedPrecondition) {
		t.Fatalf("Generate after Unload: %v", err)
	}
}
