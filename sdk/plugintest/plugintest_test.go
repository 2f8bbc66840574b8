package plugintest_test

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/hostclient"
	"github.com/lemctl/lemctl/sdk/plugintest"
	energyv1 "github.com/lemctl/lemctl/sdk/proto/lem/energy/v1"
	pluginv1 "github.com/lemctl/lemctl/sdk/proto/lem/plugin/v1"
	"github.com/lemctl/lemctl/sdk/units"
)

func options() plugintest.Options {
	art, _ := memLoader{}.Resolve(context.Background(), "mem:x")
	return plugintest.Options{
		Config:     map[string]any{"interval": "20ms", "mode": "slow"},
		BadConfigs: []plugintest.BadConfig{{Table: map[string]any{"threads": 0.0}, Key: "threads"}, {Table: map[string]any{"mode": "warp"}, Key: "mode"}},
		Loader:     plugintest.LoaderOptions{Reference: "mem:x"},
		Engine:     plugintest.EngineOptions{Artifact: art, Device: sdk.Device{Kind: "cpu", Index: -1}},
		Energy:     plugintest.EnergyOptions{Session: 100 * time.Millisecond, RequireAvailable: true},
		Timeout:    10 * time.Second,
	}
}

func TestGoodPluginPasses(t *testing.T) {
	plugintest.Run(t, goodPlugin(), options())
}

// Fixtures that each break one rule.

type engineTwice struct{ *memEngine }

func (e engineTwice) Generate(ctx context.Context, req sdk.GenerateRequest, emit func(sdk.RequestResult) error) (*sdk.BatchTiming, error) {
	return e.memEngine.Generate(ctx, req, func(r sdk.RequestResult) error {
		if err := emit(r); err != nil {
			return err
		}
		return emit(r)
	})
}

type engineBackwards struct{ *memEngine }

func (e engineBackwards) Generate(ctx context.Context, req sdk.GenerateRequest, emit func(sdk.RequestResult) error) (*sdk.BatchTiming, error) {
	return e.memEngine.Generate(ctx, req, func(r sdk.RequestResult) error {
		if n := len(r.TokenMonoNS); n > 1 {
			r.TokenMonoNS[n-1] = r.TokenMonoNS[0] - 1000
		}
		return emit(r)
	})
}

type engineNoPrecondition struct{ *memEngine }

func (e engineNoPrecondition) Generate(ctx context.Context, req sdk.GenerateRequest, emit func(sdk.RequestResult) error) (*sdk.BatchTiming, error) {
	_, _ = e.memEngine.Load(ctx, sdk.LoadRequest{})
	return e.memEngine.Generate(ctx, req, emit)
}

type engineIgnoresCancel struct{ *memEngine }

func (e engineIgnoresCancel) Generate(ctx context.Context, req sdk.GenerateRequest, emit func(sdk.RequestResult) error) (*sdk.BatchTiming, error) {
	if req.Decoding.MaxNewTokens > 1000 {
		time.Sleep(6 * time.Second) // deaf to ctx
		return nil, ctx.Err()
	}
	return e.memEngine.Generate(ctx, req, emit)
}

type engineMiscounts struct{ *memEngine }

func (e engineMiscounts) Generate(ctx context.Context, req sdk.GenerateRequest, emit func(sdk.RequestResult) error) (*sdk.BatchTiming, error) {
	bt, err := e.memEngine.Generate(ctx, req, emit)
	if bt != nil {
		bt.OutputTokens += len(req.Prompts) // counts padding-like phantom tokens
	}
	return bt, err
}

// engineOwnTokenizer counts input tokens with a tokenizer other than its loader's.
type engineOwnTokenizer struct{ *memEngine }

func (e engineOwnTokenizer) Generate(ctx context.Context, req sdk.GenerateRequest, emit func(sdk.RequestResult) error) (*sdk.BatchTiming, error) {
	return e.memEngine.Generate(ctx, req, func(r sdk.RequestResult) error {
		r.InputTokens++ // a BOS token the loader never counts
		return emit(r)
	})
}

// meterScaled reports its counter scaled by mul/div, as a meter that got its unit wrong does;
// maxPower, when set, is declared on every domain it returns.
type meterScaled struct {
	*memMeter
	mul, div uint64
	maxPower units.Power
}

func (m meterScaled) Stop(ctx context.Context, id string) (*sdk.Measurement, error) {
	meas, err := m.memMeter.Stop(ctx, id)
	if err != nil {
		return nil, err
	}
	for i := range meas.Domains {
		d := &meas.Domains[i]
		d.Domain.MaxPower = m.maxPower
		for j := range d.Samples {
			d.Samples[j].Energy = d.Samples[j].Energy * units.Energy(m.mul) / units.Energy(m.div)
		}
		d.Energy = d.Energy * units.Energy(m.mul) / units.Energy(m.div)
	}
	return meas, nil
}

type meterStopAlwaysWorks struct{ *memMeter }

func (m meterStopAlwaysWorks) Stop(ctx context.Context, id string) (*sdk.Measurement, error) {
	meas, err := m.memMeter.Stop(ctx, id)
	if err != nil {
		return &sdk.Measurement{Session: id}, nil
	}
	return meas, nil
}

type meterDecreasing struct{ *memMeter }

func (m meterDecreasing) Stop(ctx context.Context, id string) (*sdk.Measurement, error) {
	meas, err := m.memMeter.Stop(ctx, id)
	if err == nil && len(meas.Domains) > 0 && len(meas.Domains[0].Samples) > 2 {
		meas.Domains[0].Samples[1].Energy = meas.Domains[0].Samples[2].Energy + units.Joule
	}
	return meas, err
}

// meterNegativeInterval starts a session for any request, as a meter that skips the session
// policy would.
type meterNegativeInterval struct{ *memMeter }

func (m meterNegativeInterval) Start(ctx context.Context, req sdk.StartRequest) (*sdk.Session, error) {
	req.Interval = max(req.Interval, 0)
	return m.memMeter.Start(ctx, req)
}

type meterBadDevice struct{ *memMeter }

func (m meterBadDevice) Inventory(ctx context.Context) ([]sdk.Domain, error) {
	d := memDomain
	d.Device = &sdk.DeviceInfo{ID: "acme0", Vendor: "ACME Corp", VisibilityEnv: map[string]string{"ACME_VISIBLE_DEVICES": "acme0"}}
	return []sdk.Domain{d}, nil
}

type meterNoReason struct{ *memMeter }

func (m meterNoReason) Inventory(ctx context.Context) ([]sdk.Domain, error) {
	d := memDomain
	d.Available = false
	return []sdk.Domain{d}, nil
}

type repoOverwrites struct{ *memRepo }

func (r repoOverwrites) SaveRaw(_ context.Context, exp string, rank int, data []byte) (*sdk.Stored, error) {
	if err := checkID(exp, rank); err != nil {
		return nil, err
	}
	return r.put(rawKey(exp, rank), data, true)
}

type repoTraversal struct{ *memRepo }

func (r repoTraversal) SaveRaw(_ context.Context, exp string, rank int, data []byte) (*sdk.Stored, error) {
	return r.put(rawKey(exp, rank), data, false)
}

type repoCorrupts struct{ *memRepo }

func (r repoCorrupts) LoadRaw(ctx context.Context, exp string, rank int) ([]byte, error) {
	b, err := r.memRepo.LoadRaw(ctx, exp, rank)
	if len(b) > 2<<20 {
		b[2<<20] ^= 0xff
	}
	return b, err
}

type loaderShortTokenize struct{ memLoader }

func (l loaderShortTokenize) Tokenize(ctx context.Context, ref string, texts []string) ([][]int32, error) {
	ids, err := l.memLoader.Tokenize(ctx, ref, texts)
	return ids[:len(ids)-1], err
}

type loaderLossy struct{ memLoader }

func (l loaderLossy) Detokenize(ctx context.Context, ref string, ids [][]int32) ([]string, error) {
	out, err := l.memLoader.Detokenize(ctx, ref, ids)
	for i := range out {
		out[i] = strings.TrimSpace(out[i])
	}
	return out, err
}

type lenientBase struct {
	pluginv1.UnimplementedPluginServer
	info *pluginv1.InfoResponse
}

func (l *lenientBase) Info(context.Context, *pluginv1.InfoRequest) (*pluginv1.InfoResponse, error) {
	return l.info, nil
}

func (l *lenientBase) Configure(_ context.Context, req *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
	var table map[string]any
	_ = json.Unmarshal(req.GetConfigJson(), &table)
	return &pluginv1.ConfigureResponse{}, nil // accepts anything
}

// rawEnergy answers Inventory by hand, so that a raw server does serve the energy kind.
type rawEnergy struct {
	energyv1.UnimplementedEnergyServer
}

func (rawEnergy) Inventory(context.Context, *energyv1.InventoryRequest) (*energyv1.InventoryResponse, error) {
	return &energyv1.InventoryResponse{}, nil
}

// rawPlugin serves lem.plugin.v1 and a bare lem.energy.v1 by hand, to break rules the sdk's
// own adapter enforces, and returns the host's client of it.
func rawPlugin(info *pluginv1.InfoResponse) func(t *testing.T) *hostclient.Client {
	return func(t *testing.T) *hostclient.Client {
		dir, err := os.MkdirTemp("", "lem-raw-") // t.TempDir() can exceed a socket path's 108 bytes
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		l, err := net.Listen("unix", filepath.Join(dir, "raw.sock"))
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		pluginv1.RegisterPluginServer(srv, &lenientBase{info: info})
		energyv1.RegisterEnergyServer(srv, rawEnergy{})
		go func() { _ = srv.Serve(l) }()
		t.Cleanup(srv.Stop)
		conn, err := grpc.NewClient("unix://"+l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		c, err := hostclient.Connect(context.Background(), conn, nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
}

func TestSuiteCatchesEveryBrokenRule(t *testing.T) {
	with := func(mut func(p *sdk.Plugin)) *sdk.Plugin {
		p := goodPlugin()
		mut(p)
		return p
	}
	onlyEnergyInfo := &pluginv1.InfoResponse{Name: "liar", Version: "1.0.0", Kinds: []string{"energy", "engine"}, ApiVersions: []uint32{1}}
	lenientInfo := &pluginv1.InfoResponse{Name: "lenient", Version: "1.0.0", Kinds: []string{"energy"}, ApiVersions: []uint32{1},
		ConfigSchema: []*pluginv1.ConfigKey{{Key: "interval", Type: "duration", Doc: "x"}}}
	cases := []struct {
		name  string
		set   any
		check string // the failing check
		want  string // a substring of its message
	}{
		{"bad name", with(func(p *sdk.Plugin) { p.Name = "Bad_Name" }), "info", "must match"},
		{"bad version", with(func(p *sdk.Plugin) { p.Version = "latest" }), "info", "semantic version"},
		{"undocumented key", with(func(p *sdk.Plugin) { p.Schema[1].Doc = "" }), "schema", "no doc"},
		{"default of the wrong type", with(func(p *sdk.Plugin) { p.Schema[2].Default = "one" }), "schema", "default of \"threads\""},
		{"accepts unknown keys", rawPlugin(lenientInfo), "configure", "unknown key"},
		{"accepts a wrong type", rawPlugin(lenientInfo), "configure", "accepted the wrong value"},
		{"claims a kind it does not serve", rawPlugin(onlyEnergyInfo), "kinds", "does not serve"},
		{"rejects its own valid config", with(func(p *sdk.Plugin) {
			p.Configure = func(context.Context, sdk.Config) ([]sdk.ConfigError, error) {
				return []sdk.ConfigError{{Key: "mode", Message: "never happy"}}, nil
			}
		}), "configure", "was rejected"},
		{"emits a request twice", with(func(p *sdk.Plugin) { p.Engine = engineTwice{&memEngine{}} }), "engine", "emitted"},
		{"timestamps go backwards", with(func(p *sdk.Plugin) { p.Engine = engineBackwards{&memEngine{}} }), "engine", "backwards"},
		{"generates before load", with(func(p *sdk.Plugin) { p.Engine = engineNoPrecondition{&memEngine{}} }), "engine", "before Load"},
		{"ignores cancellation", with(func(p *sdk.Plugin) { p.Engine = engineIgnoresCancel{&memEngine{}} }), "engine", "cancelled"},
		{"batch timing miscounts tokens", with(func(p *sdk.Plugin) { p.Engine = engineMiscounts{&memEngine{}} }), "engine", "output tokens"},
		{"engine counts tokens with another tokenizer", with(func(p *sdk.Plugin) { p.Engine = engineOwnTokenizer{&memEngine{}} }), "engine-tokens", "loader tokenizes"},
		{"mJ sent as µJ", with(func(p *sdk.Plugin) { p.Energy = meterScaled{memMeter: newMemMeter(), mul: 1, div: 1000} }), "energy-units", "below the 1 W floor of a node domain"},
		{"nJ sent as µJ", with(func(p *sdk.Plugin) {
			p.Energy = meterScaled{memMeter: newMemMeter(), mul: 1000, div: 1, maxPower: 200 * units.Watt}
		}), "energy-units", "above its declared max power 200 W"},
		{"stop without start succeeds", with(func(p *sdk.Plugin) { p.Energy = meterStopAlwaysWorks{newMemMeter()} }), "energy", "Stop without Start"},
		{"energy decreases", with(func(p *sdk.Plugin) { p.Energy = meterDecreasing{newMemMeter()} }), "energy", "decreases"},
		{"negative interval accepted", with(func(p *sdk.Plugin) { p.Energy = meterNegativeInterval{newMemMeter()} }), "energy", "negative interval"},
		{"device vendor not a name", with(func(p *sdk.Plugin) { p.Energy = meterBadDevice{newMemMeter()} }), "energy", "vendor \"ACME Corp\""},
		{"unavailable without reason", with(func(p *sdk.Plugin) { p.Energy = meterNoReason{newMemMeter()} }), "energy", "without a reason"},
		{"overwrites a raw result", with(func(p *sdk.Plugin) { p.Repository = repoOverwrites{newMemRepo()} }), "repository", "ErrAlreadyExists"},
		{"path traversal", with(func(p *sdk.Plugin) { p.Repository = repoTraversal{newMemRepo()} }), "repository", "\"../x\""},
		{"corrupts a large payload", with(func(p *sdk.Plugin) { p.Repository = repoCorrupts{newMemRepo()} }), "repository", "exact bytes"},
		{"tokenize drops a text", with(func(p *sdk.Plugin) { p.Loader = loaderShortTokenize{} }), "loader", "id lists"},
		{"lossy detokenize", with(func(p *sdk.Plugin) { p.Loader = loaderLossy{} }), "loader", "Detokenize(Tokenize("},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := options()
			if tc.name == "accepts unknown keys" || tc.name == "accepts a wrong type" || tc.name == "claims a kind it does not serve" {
				opts.Config = nil
				opts.BadConfigs = nil
			}
			var failures []plugintest.Failure
			switch f := tc.set.(type) {
			case *sdk.Plugin:
				failures = plugintest.CheckPlugin(t, f, opts)
			case func(*testing.T) *hostclient.Client:
				failures = plugintest.Check(t, f(t), opts)
			}
			for _, f := range failures {
				if f.Check == tc.check && strings.Contains(f.Message, tc.want) {
					return
				}
			}
			t.Errorf("the suite did not catch %q: want a %q failure containing %q, got %v", tc.name, tc.check, tc.want, failures)
		})
	}
}
