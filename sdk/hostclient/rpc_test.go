package hostclient_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/hostclient"
	"github.com/lemctl/lemctl/sdk/units"
)

// bigMeter returns a measurement whose timeline is far larger than one gRPC message.
type bigMeter struct{ samples int }

func (bigMeter) Inventory(context.Context) ([]sdk.Domain, error) { return nil, nil }
func (bigMeter) Environment(context.Context) (*sdk.Environment, error) {
	return &sdk.Environment{}, nil
}
func (bigMeter) Start(context.Context, sdk.StartRequest) (*sdk.Session, error) {
	return &sdk.Session{ID: "s"}, nil
}
func (bigMeter) Mark(context.Context, string, string) (int64, error) { return 0, nil }
func (m bigMeter) Stop(_ context.Context, id string) (*sdk.Measurement, error) {
	if id != "s" {
		return nil, errors.New("unknown session: " + sdk.ErrNotFound.Error())
	}
	d := sdk.DomainEnergy{Domain: sdk.Domain{ID: "big", Available: true}}
	for i := 0; i < m.samples; i++ {
		s := sdk.Sample{MonoNS: int64(i) * 1e6, Energy: units.Energy(i * 1000), PowerW: float64(i % 300), AveragePowerW: math.NaN(),
			TemperatureC: 40, SMClockMHz: math.NaN(), MemoryClockMHz: math.NaN(), UtilizationPct: math.NaN(), MemoryUsedBytes: math.NaN()}
		d.Samples = append(d.Samples, s)
	}
	d.Energy = d.Samples[len(d.Samples)-1].Energy
	return &sdk.Measurement{Session: id, Domains: []sdk.DomainEnergy{d}}, nil
}

func connect(t *testing.T, p *sdk.Plugin) *hostclient.Client {
	t.Helper()
	c, err := hostclient.InProcess(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestStopTimelineIsChunked(t *testing.T) {
	// 200,000 samples ≈ 8 MB of protobuf: more than the 4 MiB default message limit that an
	// in-process connection keeps, so only chunking gets it through.
	c := connect(t, &sdk.Plugin{Name: "big", Energy: bigMeter{samples: 200_000}})
	m, err := c.Meter().Stop(context.Background(), "s")
	if err != nil {
		t.Fatal(err)
	}
	got := m.Domains[0].Samples
	if len(got) != 200_000 {
		t.Fatalf("got %d samples, want 200000", len(got))
	}
	for _, i := range []int{0, 1, 99_999, 199_999} {
		s := got[i]
		if s.MonoNS != int64(i)*1e6 || s.Energy != units.Energy(i*1000) || s.PowerW != float64(i%300) || s.TemperatureC != 40 || !math.IsNaN(s.AveragePowerW) {
			t.Errorf("sample %d came back as %+v", i, s)
		}
	}
}

type failingLoader struct{}

func (failingLoader) Resolve(_ context.Context, ref string) (*sdk.Artifact, error) {
	return nil, errors.Join(errors.New("preset \"nope\" is unknown (valid: gpt2-tiny)"), sdk.ErrInvalidArgument)
}
func (failingLoader) Tokenize(context.Context, string, []string) ([][]int32, error) {
	return nil, sdk.ErrNotFound
}
func (failingLoader) Detokenize(context.Context, string, [][]int32) ([]string, error) {
	return nil, errors.New("plain failure")
}

func TestErrorsKeepTheirSentinelAcrossTheRPC(t *testing.T) {
	c := connect(t, &sdk.Plugin{Name: "failing", Loader: failingLoader{}})
	ctx := context.Background()
	_, err := c.Loader().Resolve(ctx, "synthetic:nope")
	if !errors.Is(err, sdk.ErrInvalidArgument) {
		t.Errorf("Resolve error %v does not match ErrInvalidArgument", err)
	}
	if err == nil || !strings.Contains(err.Error(), "valid: gpt2-tiny") {
		t.Errorf("Resolve error %q lost the plugin's message", err)
	}
	if _, err := c.Loader().Tokenize(ctx, "", nil); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("Tokenize error %v does not match ErrNotFound", err)
	}
	_, err = c.Loader().Detokenize(ctx, "", nil)
	if err == nil || errors.Is(err, sdk.ErrNotFound) || err.Error() != "plain failure" {
		t.Errorf("Detokenize error = %v, want the plain message", err)
	}
}

func TestConfigureValidatesAgainstTheSchema(t *testing.T) {
	p := &sdk.Plugin{Name: "cfg", Loader: failingLoader{}, Schema: []sdk.ConfigKey{
		{Key: "interval", Type: sdk.TypeDuration, Default: "100ms", Doc: "d", Min: sdk.Bound(0.01)},
		{Key: "devices", Type: sdk.TypeStrings, Doc: "d"},
		{Key: "mode", Type: sdk.TypeString, Default: "a", Doc: "d", Enum: []string{"a", "b"}},
	}}
	var got sdk.Config
	p.Configure = func(_ context.Context, cfg sdk.Config) ([]sdk.ConfigError, error) { got = cfg; return nil, nil }
	c := connect(t, p)
	errs, err := c.Configure(context.Background(), map[string]any{"intervall": "1s", "interval": "1ms", "devices": "GPU-1", "mode": "c"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"intervall": `did you mean "interval"`, "interval": "out of range", "devices": "wrong type", "mode": "not a valid value"}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors %v, want %d", len(errs), errs, len(want))
	}
	for _, e := range errs {
		if !strings.Contains(e.Message, want[e.Key]) {
			t.Errorf("error on %q = %q, want it to contain %q", e.Key, e.Message, want[e.Key])
		}
	}
	if got != nil {
		t.Error("the plugin's Configure ran although the schema check failed")
	}
	errs, err = c.Configure(context.Background(), map[string]any{"devices": []any{"GPU-1"}})
	if err != nil || len(errs) != 0 {
		t.Fatalf("valid config rejected: %v %v", err, errs)
	}
	if got.Duration("interval").Milliseconds() != 100 || got.String("mode") != "a" || got.Strings("devices")[0] != "GPU-1" {
		t.Errorf("defaults not filled: %v", got)
	}
}

// loadRecorder is an engine that keeps the LoadRequest it was given.
type loadRecorder struct{ got sdk.LoadRequest }

func (e *loadRecorder) Load(_ context.Context, req sdk.LoadRequest) (*sdk.LoadResult, error) {
	e.got = req
	return &sdk.LoadResult{}, nil
}
func (e *loadRecorder) Warmup(context.Context, sdk.WarmupRequest) ([]sdk.BatchTiming, error) {
	return nil, nil
}
func (e *loadRecorder) Generate(context.Context, sdk.GenerateRequest, func(sdk.RequestResult) error) (*sdk.BatchTiming, error) {
	return nil, sdk.ErrUnimplemented
}
func (e *loadRecorder) Unload(context.Context) error { return nil }

// TestLoadRequestCrossesTheRPC: every field of a LoadRequest reaches the engine.
func TestLoadRequestCrossesTheRPC(t *testing.T) {
	e := &loadRecorder{}
	c := connect(t, &sdk.Plugin{Name: "rec", Version: "0.0.1", Engine: e})
	want := sdk.LoadRequest{Artifact: sdk.Artifact{Reference: "m", Path: "/m.onnx"}, Device: sdk.Device{Kind: "cpu", Index: -1},
		Threads: 3, CPUs: []int{0, 1}, TokenIDsOnly: true}
	if _, err := c.Engine().Load(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	g := e.got
	if g.Artifact.Reference != "m" || g.Device.Kind != "cpu" || g.Threads != 3 || len(g.CPUs) != 2 || !g.TokenIDsOnly {
		t.Errorf("engine got %+v, want %+v", g, want)
	}
}

// staticEngine has no continuous batching.
type staticEngine struct{}

func (staticEngine) Load(context.Context, sdk.LoadRequest) (*sdk.LoadResult, error) {
	return &sdk.LoadResult{}, nil
}
func (staticEngine) Warmup(context.Context, sdk.WarmupRequest) ([]sdk.BatchTiming, error) {
	return nil, nil
}
func (staticEngine) Generate(context.Context, sdk.GenerateRequest, func(sdk.RequestResult) error) (*sdk.BatchTiming, error) {
	return &sdk.BatchTiming{}, nil
}
func (staticEngine) Unload(context.Context) error { return nil }

func TestServeOnAStaticEngineIsUnimplemented(t *testing.T) {
	c := connect(t, &sdk.Plugin{Name: "static", Engine: staticEngine{}})
	in := make(chan sdk.ServeRequest)
	close(in)
	err := c.Engine().(sdk.ContinuousEngine).Serve(context.Background(), sdk.ServeOptions{}, in, func(sdk.ServeEvent) error { return nil })
	if !errors.Is(err, sdk.ErrUnimplemented) || !strings.Contains(err.Error(), "continuous batching") {
		t.Fatalf("Serve on a static engine: %v, want ErrUnimplemented naming continuous batching", err)
	}
}
