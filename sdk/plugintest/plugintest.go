// Package plugintest is the conformance suite a plugin author runs from their own module's tests:
//
//	func TestConformance(t *testing.T) {
//		plugintest.Run(t, myplugin.New(), plugintest.Options{Config: map[string]any{…}})
//	}
//
// It serves the plugin over an in-process gRPC connection (sdk/hostclient.InProcess: the same
// adapters a real plugin process uses) and checks the contract of docs/architecture.md for every kind the plugin serves: a
// sane Info and config schema, Configure rejecting unknown keys and bad values per key, stream
// order and stream errors, context cancellation, Stop without Start, concurrent sessions, and
// chunking of large payloads; and two sanity rules, energy-units (a meter's counter implies a
// power between its domain kind's floor and its declared maximum, so a counter in the wrong unit
// fails) and engine-tokens (a loader+engine plugin's engine counts input tokens as its own loader
// does). It is proven by fixture plugins that each break one rule. CheckClient runs the same
// suite on a plugin binary in any language that the host has opened (`lemctl plugins check`).
//
// It never touches real hardware by itself: an energy plugin is tested on whatever its Config
// points it at.
package plugintest

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/hostclient"
)

// Options tell the suite how to exercise a plugin.
type Options struct {
	// Config is a valid configuration table, applied before the kind checks.
	Config map[string]any
	// BadConfigs are tables that must be rejected with an error on Key.
	BadConfigs []BadConfig
	Loader     LoaderOptions
	Engine     EngineOptions
	Energy     EnergyOptions
	// Timeout bounds each check (default 30 s).
	Timeout time.Duration
}

// Report is the outcome of one run of the suite: every check it ran, in order, and the broken
// rules (each Failure names its check).
type Report struct {
	Checks   []string
	Failures []Failure
}

// FailuresOf returns the broken rules of one check.
func (r Report) FailuresOf(check string) []Failure {
	var out []Failure
	for _, f := range r.Failures {
		if f.Check == check {
			out = append(out, f)
		}
	}
	return out
}

// BadConfig is a configuration table that must be rejected, with an error naming Key.
type BadConfig struct {
	Table map[string]any
	Key   string
}

// LoaderOptions exercise a loader.
type LoaderOptions struct {
	// Reference is a model reference the loader resolves (required for loaders).
	Reference string
	// Texts are tokenized; those in RoundTrip must detokenize back exactly. Defaults are used
	// when empty.
	Texts     []string
	RoundTrip []string
}

// EngineOptions exercise an engine.
type EngineOptions struct {
	// Artifact is loaded before Generate (required for engines). A test usually gets it from the
	// plugin's own loader.
	Artifact *sdk.Artifact
	Device   sdk.Device
	// Prompts form the test batch (default: three text prompts of different lengths).
	Prompts  []sdk.Prompt
	Decoding sdk.Decoding
}

// EnergyOptions exercise a meter.
type EnergyOptions struct {
	// Session is how long a measurement session runs (default 300 ms).
	Session time.Duration
	// RequireAvailable fails the suite when no domain is available.
	RequireAvailable bool
}

// Failure is one broken rule.
type Failure struct {
	Check   string
	Message string
}

func (f Failure) String() string { return f.Check + ": " + f.Message }

// Run checks p and reports every broken rule as a test error.
func Run(t *testing.T, p *sdk.Plugin, opts Options) {
	t.Helper()
	for _, f := range CheckPlugin(t, p, opts) {
		t.Errorf("%s", f)
	}
}

// CheckPlugin runs the suite against p and returns the broken rules. Unlike Check it also sees
// the plugin's side of each call, so it can tell that an engine went on generating after the
// host cancelled (the host's own call always returns at once).
func CheckPlugin(tb testing.TB, p *sdk.Plugin, opts Options) []Failure {
	tb.Helper()
	observed := *p
	var obs *observedEngine
	if p.Engine != nil {
		obs = &observedEngine{Engine: p.Engine, returned: make(chan struct{}, 64)}
		observed.Engine = obs
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout(opts))
	defer cancel()
	c, err := hostclient.InProcess(ctx, &observed)
	if err != nil {
		return []Failure{{"connect", err.Error()}}
	}
	defer c.Close()
	return check(c, opts, obs)
}

// Check runs the suite against a plugin the host is already connected to — a plugin binary
// started with hostclient.Open, or a hand-made server reached with hostclient.Connect — and
// returns the broken rules. It does not close c.
func Check(tb testing.TB, c *hostclient.Client, opts Options) []Failure {
	tb.Helper()
	return check(c, opts, nil)
}

// timeout is the bound of each check.
func timeout(opts Options) time.Duration {
	if opts.Timeout <= 0 {
		return 30 * time.Second
	}
	return opts.Timeout
}

// observedEngine reports when each Generate call returns inside the plugin.
type observedEngine struct {
	sdk.Engine
	returned chan struct{}
}

func (o *observedEngine) Generate(ctx context.Context, req sdk.GenerateRequest, emit func(sdk.RequestResult) error) (*sdk.BatchTiming, error) {
	defer func() {
		select {
		case o.returned <- struct{}{}:
		default:
		}
	}()
	return o.Engine.Generate(ctx, req, emit)
}

func check(c *hostclient.Client, opts Options, obs *observedEngine) []Failure {
	opts.Timeout = timeout(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 5*opts.Timeout)
	defer cancel()
	return run(ctx, c, opts, obs).Failures
}

// CheckClient runs the suite against a plugin that is already open, such as a plugin binary in
// any language started with hostclient.Open: this is what `lemctl plugins check PATH` does. It cannot
// see inside the plugin, so the rule that an engine stops generating once its context is
// cancelled is checked only from the host's side.
func CheckClient(ctx context.Context, c *hostclient.Client, opts Options) Report {
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	return run(ctx, c, opts, nil)
}

// The names of the suite's checks, in the order they run.
const (
	CheckInfo         = "info"
	CheckSchema       = "schema"
	CheckConfigure    = "configure"
	CheckKinds        = "kinds"
	CheckLoader       = "loader"
	CheckEngine       = "engine"
	CheckEngineTokens = "engine-tokens"
	CheckEnergy       = "energy"
	CheckEnergyUnits  = "energy-units"
	CheckRepository   = "repository"
)

func run(ctx context.Context, c *hostclient.Client, opts Options, obs *observedEngine) Report {
	s := &suite{c: c, opts: opts, engineObserver: obs}
	s.ran(CheckInfo, CheckSchema)
	s.checkInfo()
	s.ran(CheckConfigure)
	s.checkConfigure(ctx)
	s.ran(CheckKinds)
	if err := c.Probe(ctx); err != nil {
		s.fail(CheckKinds, "%v", err)
	}
	info := c.Info()
	if info.Serves(sdk.KindLoader) && c.Loader() != nil {
		s.ran(CheckLoader)
		s.checkLoader()
	}
	if info.Serves(sdk.KindEngine) && c.Engine() != nil {
		s.ran(CheckEngine)
		s.checkEngine()
	}
	if info.Serves(sdk.KindEnergy) && c.Meter() != nil {
		s.ran(CheckEnergy)
		s.checkEnergy()
	}
	if info.Serves(sdk.KindRepository) && c.Repository() != nil {
		s.ran(CheckRepository)
		s.checkRepository()
	}
	return Report{Checks: s.checks, Failures: s.failures}
}

type suite struct {
	engineObserver *observedEngine
	c              *hostclient.Client
	opts           Options
	checks         []string
	failures       []Failure
}

// ran records that checks were run (a check with no failure passed).
func (s *suite) ran(checks ...string) {
	for _, c := range checks {
		if !slices.Contains(s.checks, c) {
			s.checks = append(s.checks, c)
		}
	}
}

func (s *suite) fail(check, format string, args ...any) {
	s.ran(check)
	s.failures = append(s.failures, Failure{Check: check, Message: fmt.Sprintf(format, args...)})
}

func (s *suite) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.opts.Timeout)
}

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	versionRE = regexp.MustCompile(`^v?\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$`)
	knownType = map[string]bool{sdk.TypeString: true, sdk.TypeInt: true, sdk.TypeFloat: true, sdk.TypeBool: true,
		sdk.TypeDuration: true, sdk.TypeStrings: true, sdk.TypeInts: true, sdk.TypeTable: true, sdk.TypeAny: true}
)

func (s *suite) checkInfo() {
	info := s.c.Info()
	if !nameRE.MatchString(info.Name) {
		s.fail("info", "name %q must match %s (it names the binary lem-plugin-<name>)", info.Name, nameRE)
	}
	if !versionRE.MatchString(info.Version) {
		s.fail("info", "version %q is not a semantic version (e.g. 1.2.3)", info.Version)
	}
	if len(info.Kinds) == 0 {
		s.fail("info", "no kinds")
	}
	for _, k := range info.Kinds {
		known := false
		for _, a := range sdk.AllKinds {
			known = known || a == k
		}
		if !known {
			s.fail("info", "unknown kind %q (valid: %v)", k, sdk.AllKinds)
		}
	}
	common := false
	for _, v := range info.APIVersions {
		for _, w := range sdk.SupportedAPIVersions {
			common = common || v == w
		}
	}
	if !common {
		s.fail("info", "API versions %v share none with the sdk's %v", info.APIVersions, sdk.SupportedAPIVersions)
	}
	seen := map[string]bool{}
	for _, k := range info.ConfigSchema {
		switch {
		case k.Key == "":
			s.fail("schema", "a config key has no name")
		case seen[k.Key]:
			s.fail("schema", "config key %q is declared twice", k.Key)
		case !knownType[k.Type]:
			s.fail("schema", "config key %q has unknown type %q", k.Key, k.Type)
		case strings.TrimSpace(k.Doc) == "":
			s.fail("schema", "config key %q has no doc", k.Key)
		}
		seen[k.Key] = true
		if k.Default != nil && knownType[k.Type] {
			if _, errs := sdk.ValidateConfig([]sdk.ConfigKey{k}, map[string]any{k.Key: k.Default}); len(errs) > 0 {
				s.fail("schema", "default of %q is not valid for its own schema: %v", k.Key, errs[0])
			}
		}
	}
}

func hasKeyError(errs []sdk.ConfigError, key string) bool {
	for _, e := range errs {
		if e.Key == key && e.Message != "" {
			return true
		}
	}
	return false
}

// wrongValue returns a value of the wrong JSON type for a schema type.
func wrongValue(typ string) (any, bool) {
	switch typ {
	case sdk.TypeString, sdk.TypeDuration:
		return 12345.0, true
	case sdk.TypeInt, sdk.TypeFloat:
		return "not a number", true
	case sdk.TypeBool:
		return "not a bool", true
	case sdk.TypeStrings, sdk.TypeInts:
		return 7.0, true
	case sdk.TypeTable:
		return "not a table", true
	}
	return nil, false
}

func (s *suite) checkConfigure(ctx context.Context) {
	const unknown = "plugintest_unknown_key"
	errs, err := s.c.Configure(ctx, map[string]any{unknown: true})
	if err != nil {
		s.fail("configure", "an unknown key must come back as a per-key error, not a failed call: %v", err)
	} else if !hasKeyError(errs, unknown) {
		s.fail("configure", "unknown key %q was accepted (errors: %v)", unknown, errs)
	}
	for _, k := range s.c.Info().ConfigSchema {
		bad, ok := wrongValue(k.Type)
		if !ok {
			continue
		}
		errs, err := s.c.Configure(ctx, map[string]any{k.Key: bad})
		if err != nil {
			s.fail("configure", "a wrong type for %q must be a per-key error, not a failed call: %v", k.Key, err)
		} else if !hasKeyError(errs, k.Key) {
			s.fail("configure", "key %q (type %s) accepted the wrong value %#v", k.Key, k.Type, bad)
		}
	}
	for _, b := range s.opts.BadConfigs {
		errs, err := s.c.Configure(ctx, b.Table)
		if err != nil {
			s.fail("configure", "bad table %v must give per-key errors, not a failed call: %v", b.Table, err)
		} else if !hasKeyError(errs, b.Key) {
			s.fail("configure", "bad table %v gave no error on %q (errors: %v)", b.Table, b.Key, errs)
		}
	}
	errs, err = s.c.Configure(ctx, s.opts.Config)
	if err != nil || len(errs) > 0 {
		s.fail("configure", "the valid configuration %v was rejected: %v %v", s.opts.Config, err, errs)
	}
}
