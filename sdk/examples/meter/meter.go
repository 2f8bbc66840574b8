package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/counter"
	"github.com/lemctl/lemctl/sdk/sampler"
	"github.com/lemctl/lemctl/sdk/units"
)

// The plugin's identity. The Makefile builds this directory as lem-plugin-example-meter, so the
// name is "example-meter".
const (
	pluginName    = "example-meter"
	pluginVersion = "0.1.0"
)

// Configuration keys.
const (
	keyDomains      = "domains"
	keyPower        = "power_w"
	keyIdlePower    = "idle_power_w"
	keySteps        = "steps"
	keyStepPeriod   = "step_period"
	keyUpdatePeriod = "update_period"
	keyInterval     = "interval"
	keyBurnShare    = "burn_share"
	keyUnavailable  = "unavailable"
	keyVendor       = "vendor"
	keyVisibility   = "visibility_env"
)

// baselineLabel is the StartRequest.Label of the host's idle-baseline sessions; such sessions
// see idle_power_w instead of the active power.
const baselineLabel = "baseline"

// Bounds of the configuration.
const (
	maxPowerW       = 100_000 // 100 kW keeps every counter product far inside 128 bits
	minInterval     = time.Millisecond
	maxInterval     = time.Minute
	minUpdatePeriod = 100 * time.Microsecond
)

var defaultDomains = []string{"example-node:node:node"}

// schema is the meter's configuration schema; the sdk checks types and bounds against it before
// configure sees the table.
func schema() []sdk.ConfigKey {
	return []sdk.ConfigKey{
		{Key: keyDomains, Type: sdk.TypeStrings, Default: defaultDomains,
			Doc: `domains to simulate, each "id", "id:kind:scope" or "id:kind:scope:watts" (kind: gpu, package, dram, core, uncore, psys, node, other; scope: device, socket, node); a bare id is a node-scoped node domain; watts fixes that domain's power`},
		{Key: keyPower, Type: sdk.TypeFloat, Default: 150.0, Min: sdk.Bound(0), Max: sdk.Bound(maxPowerW),
			Doc: "active power in watts of every domain that sets no watts of its own (unless steps is set)"},
		{Key: keyIdlePower, Type: sdk.TypeFloat, Min: sdk.Bound(0), Max: sdk.Bound(maxPowerW),
			Doc: `power in watts of every domain in sessions whose label is "baseline" (the host's idle baseline); unset: the same power as other sessions`},
		{Key: keySteps, Type: sdk.TypeAny,
			Doc: "stepped power: a list of watts (e.g. [100, 250]) that domains without watts of their own cycle through, one step per step_period on the absolute monotonic clock; replaces power_w"},
		{Key: keyStepPeriod, Type: sdk.TypeDuration, Default: "100ms", Min: sdk.Bound(minUpdatePeriod.Seconds()), Max: sdk.Bound(3600),
			Doc: "how long each entry of steps lasts"},
		{Key: keyUpdatePeriod, Type: sdk.TypeDuration, Default: "10ms", Min: sdk.Bound(minUpdatePeriod.Seconds()), Max: sdk.Bound(10),
			Doc: "the counters change only at multiples of this period of the absolute monotonic clock, like a hardware counter's update period"},
		{Key: keyInterval, Type: sdk.TypeDuration, SamplingInterval: true, Default: "20ms", Min: sdk.Bound(minInterval.Seconds()), Max: sdk.Bound(maxInterval.Seconds()),
			Doc: "sampling interval of a session whose start request names none"},
		{Key: keyBurnShare, Type: sdk.TypeFloat, Default: 0.0, Min: sdk.Bound(0), Max: sdk.Bound(1),
			Doc: "while at least one session is open, the plugin process burns CPU until its CPU time (its sampling included) is this fraction of one core, to test overhead accounting; must be below 1"},
		{Key: keyUnavailable, Type: sdk.TypeStrings,
			Doc: "ids of configured domains to report as unavailable (with a reason), as a meter does for a domain it cannot read"},
		{Key: keyVendor, Type: sdk.TypeString, Default: "acme",
			Doc: "vendor reported for the device of every device-scoped domain (each such domain is one simulated device whose id is the domain id)"},
		{Key: keyVisibility, Type: sdk.TypeString, Default: "ACME_VISIBLE_DEVICES",
			Doc: `name of the environment variable that makes a worker see only one simulated device: each device reports it (set to the device id) as its visibility environment, and when the plugin's own environment sets it (a comma-separated list of ids), the meter lists only those devices; "" reports no visibility environment, so the host cannot isolate the devices`},
	}
}

// domainSpec is one configured domain.
type domainSpec struct {
	id, kind, scope string
	watts           float64 // the domain's own power; meaningful when hasWatts
	hasWatts        bool
}

// settings is the parsed configuration.
type settings struct {
	domains      []domainSpec
	powerW       float64
	idlePowerW   float64 // meaningful when hasIdle
	hasIdle      bool
	steps        []float64
	stepPeriod   time.Duration
	updatePeriod time.Duration
	interval     time.Duration
	burnShare    float64
	unavailable  map[string]bool
	vendor       string
	visibility   string // the visibility variable's name; "" for none
	// visible is the visibility variable's value in the plugin's environment; meaningful
	// when hasVisible. A device-scoped domain it does not name is hidden.
	visible    map[string]bool
	visibleRaw string
	hasVisible bool
}

// defaultSettings returns the settings of an unconfigured meter.
func defaultSettings() settings {
	cfg, errs := sdk.ValidateConfig(schema(), nil)
	if len(errs) > 0 {
		panic(fmt.Sprintf("example meter: defaults do not validate: %v", errs))
	}
	s, cerrs := parseSettings(cfg)
	if len(cerrs) > 0 {
		panic(fmt.Sprintf("example meter: defaults do not parse: %v", cerrs))
	}
	return s
}

// parseSettings turns a schema-checked table (defaults filled in) into settings and reports every
// value that is well-typed but wrong.
func parseSettings(cfg sdk.Config) (settings, []sdk.ConfigError) {
	s := settings{
		powerW:       cfg.Float(keyPower),
		stepPeriod:   cfg.Duration(keyStepPeriod),
		updatePeriod: cfg.Duration(keyUpdatePeriod),
		interval:     cfg.Duration(keyInterval),
		burnShare:    cfg.Float(keyBurnShare),
		unavailable:  map[string]bool{},
		vendor:       cfg.String(keyVendor),
		visibility:   cfg.String(keyVisibility),
	}
	var errs []sdk.ConfigError
	if cfg.Has(keyIdlePower) {
		s.idlePowerW, s.hasIdle = cfg.Float(keyIdlePower), true
	}
	if s.visibility != "" && !validEnvName(s.visibility) {
		errs = append(errs, sdk.ConfigError{Key: keyVisibility, Message: fmt.Sprintf("%q is not an environment variable name", s.visibility), Valid: `letters, digits and "_", not starting with a digit, or ""`})
	}
	if s.burnShare >= 1 {
		errs = append(errs, sdk.ConfigError{Key: keyBurnShare, Message: fmt.Sprintf("%g is not below 1", s.burnShare), Valid: "a float in [0, 1)"})
	}
	seen := map[string]bool{}
	for _, text := range cfg.Strings(keyDomains) {
		d, err := parseDomain(text)
		switch {
		case err != nil:
			errs = append(errs, sdk.ConfigError{Key: keyDomains, Message: err.Error(), Valid: `"id", "id:kind:scope" or "id:kind:scope:watts"`})
		case seen[d.id]:
			errs = append(errs, sdk.ConfigError{Key: keyDomains, Message: fmt.Sprintf("domain id %q is repeated", d.id), Valid: "unique ids"})
		default:
			seen[d.id] = true
			s.domains = append(s.domains, d)
		}
	}
	if len(s.domains) == 0 && len(errs) == 0 {
		errs = append(errs, sdk.ConfigError{Key: keyDomains, Message: "no domains", Valid: "at least one domain"})
	}
	if cfg.Has(keySteps) {
		steps, err := parseSteps(cfg[keySteps])
		if err != nil {
			errs = append(errs, sdk.ConfigError{Key: keySteps, Message: err.Error(), Valid: fmt.Sprintf("a non-empty list of watts in [0, %d]", maxPowerW)})
		}
		s.steps = steps
	}
	for _, id := range cfg.Strings(keyUnavailable) {
		if !seen[id] {
			errs = append(errs, sdk.ConfigError{Key: keyUnavailable, Message: fmt.Sprintf("%q is not a configured domain", id), Valid: "ids listed in domains"})
			continue
		}
		s.unavailable[id] = true
	}
	return s, errs
}

var (
	domainKinds = []string{sdk.DomainGPU, sdk.DomainPackage, sdk.DomainDRAM, sdk.DomainCore, sdk.DomainUncore, sdk.DomainPsys, sdk.DomainNode, sdk.DomainOther}
	scopes      = []string{sdk.ScopeDevice, sdk.ScopeSocket, sdk.ScopeNode}
)

// parseDomain parses "id", "id:kind:scope" or "id:kind:scope:watts".
func parseDomain(text string) (domainSpec, error) {
	parts := strings.Split(text, ":")
	d := domainSpec{id: parts[0], kind: sdk.DomainNode, scope: sdk.ScopeNode}
	if d.id == "" || strings.ContainsAny(d.id, " \t\n/") {
		return d, fmt.Errorf("%q: the id must be non-empty without spaces or slashes", text)
	}
	switch len(parts) {
	case 1:
		return d, nil
	case 3, 4:
	default:
		return d, fmt.Errorf("%q has %d fields", text, len(parts))
	}
	d.kind, d.scope = parts[1], parts[2]
	if !contains(domainKinds, d.kind) {
		return d, fmt.Errorf("%q: unknown kind %q (valid: %s)", text, d.kind, strings.Join(domainKinds, ", "))
	}
	if !contains(scopes, d.scope) {
		return d, fmt.Errorf("%q: unknown scope %q (valid: %s)", text, d.scope, strings.Join(scopes, ", "))
	}
	if len(parts) == 4 {
		w, err := strconv.ParseFloat(parts[3], 64)
		if err != nil || !(w >= 0 && w <= maxPowerW) {
			return d, fmt.Errorf("%q: watts %q is not a number in [0, %d]", text, parts[3], maxPowerW)
		}
		d.watts, d.hasWatts = w, true
	}
	return d, nil
}

// parseSteps checks the steps value: a non-empty JSON list of numbers in [0, maxPowerW].
func parseSteps(v any) ([]float64, error) {
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return nil, fmt.Errorf("steps must be a non-empty list of numbers")
	}
	out := make([]float64, len(list))
	for i, e := range list {
		w, ok := e.(float64)
		if !ok || !(w >= 0 && w <= maxPowerW) {
			return nil, fmt.Errorf("steps[%d] = %v is not a number of watts in [0, %d]", i, e, maxPowerW)
		}
		out[i] = w
	}
	return out, nil
}

// validEnvName reports whether name is a portable environment variable name.
func validEnvName(name string) bool {
	for i, r := range name {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return name != ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// meter is the scriptable meter. Start, Mark and Stop come from the embedded sampler.Sessions;
// the meter supplies Inventory, Environment and the session source.
type meter struct {
	*sampler.Sessions

	mu   sync.Mutex
	set  settings
	burn burner
	// lookupEnv reads the plugin's environment (os.LookupEnv; tests replace it): the
	// visibility variable comes from it.
	lookupEnv func(string) (string, bool)
}

// newPlugin is the plugin factory main serves.
func newPlugin() *sdk.Plugin {
	m := newMeter()
	return &sdk.Plugin{
		Name:        pluginName,
		Version:     pluginVersion,
		Description: "scriptable example meter: exact, simulated energy counters driven by CLOCK_MONOTONIC",
		Schema:      schema(),
		Configure:   m.configure,
		Energy:      m,
	}
}

func newMeter() *meter {
	m := &meter{set: defaultSettings(), lookupEnv: os.LookupEnv}
	m.set = m.withVisibility(m.set)
	m.Sessions = &sampler.Sessions{Offer: m.offer}
	return m
}

// configure applies a table the sdk has checked against the schema.
func (m *meter) configure(_ context.Context, cfg sdk.Config) ([]sdk.ConfigError, error) {
	s, errs := parseSettings(cfg)
	if len(errs) > 0 {
		return errs, nil
	}
	s = m.withVisibility(s)
	m.mu.Lock()
	m.set = s
	m.mu.Unlock()
	return nil, nil
}

// withVisibility reads the visibility variable of s from the plugin's environment: a worker
// launched on one device gets it from the host, as the device's visibility environment.
func (m *meter) withVisibility(s settings) settings {
	s.visible, s.hasVisible, s.visibleRaw = nil, false, ""
	if s.visibility == "" {
		return s
	}
	v, ok := m.lookupEnv(s.visibility)
	if !ok {
		return s
	}
	s.visible, s.hasVisible, s.visibleRaw = map[string]bool{}, true, v
	for _, id := range strings.Split(v, ",") {
		if id = strings.TrimSpace(id); id != "" {
			s.visible[id] = true
		}
	}
	return s
}

// listed returns the configured domains the meter reports, with their positions in the
// configuration: every domain, less the device-scoped ones the visibility variable hides.
func (s settings) listed() (doms []domainSpec, at []int) {
	for i, d := range s.domains {
		if d.scope == sdk.ScopeDevice && s.hasVisible && !s.visible[d.id] {
			continue
		}
		doms, at = append(doms, d), append(at, i)
	}
	return doms, at
}

func (m *meter) settings() settings {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.set
}

// Inventory lists every configured domain (less the devices the visibility variable hides);
// those named in unavailable say why they cannot be read.
func (m *meter) Inventory(context.Context) ([]sdk.Domain, error) {
	s := m.settings()
	doms, at := s.listed()
	out := make([]sdk.Domain, len(doms))
	for i, d := range doms {
		out[i] = s.domain(d, at[i])
	}
	return out, nil
}

// Environment reports how the meter is scripted.
func (m *meter) Environment(context.Context) (*sdk.Environment, error) {
	s := m.settings()
	facts := map[string]string{
		"meter":         "scripted",
		"power_w":       fmtWatts(s.powerW),
		"update_period": s.updatePeriod.String(),
		"interval":      s.interval.String(),
	}
	if s.hasIdle {
		facts["idle_power_w"] = fmtWatts(s.idlePowerW)
	}
	if len(s.steps) > 0 {
		ws := make([]string, len(s.steps))
		for i, w := range s.steps {
			ws[i] = fmtWatts(w)
		}
		facts["steps_w"] = strings.Join(ws, ",")
		facts["step_period"] = s.stepPeriod.String()
	}
	if s.visibility != "" {
		// What this process saw: a worker's meter proves which devices the worker was given.
		facts["visibility_env"] = s.visibility
		facts["visible_devices"] = "(unset)"
		if s.hasVisible {
			facts["visible_devices"] = s.visibleRaw
		}
	}
	env := &sdk.Environment{Facts: facts}
	doms, _ := s.listed()
	for _, d := range doms {
		env.Devices = append(env.Devices, sdk.DeviceEnvironment{ID: d.id, Facts: map[string]string{
			"kind":     d.kind,
			"scope":    d.scope,
			"power":    s.profile(d, false).String(),
			"scripted": "true",
		}})
	}
	return env, nil
}

func fmtWatts(w float64) string { return strconv.FormatFloat(w, 'g', -1, 64) }

// domain describes configured domain d, the i-th.
func (s settings) domain(d domainSpec, i int) sdk.Domain {
	dom := sdk.Domain{
		ID: d.id, Name: d.id, Kind: d.kind, Scope: d.scope,
		Method: sdk.MethodCounter, Confidence: sdk.ConfidenceSimulated, Available: true,
		Resolution: units.Microjoule, UpdatePeriod: s.updatePeriod,
		MaxPower: s.maxPower(d),
	}
	if d.scope == sdk.ScopeDevice {
		// Each device-scoped domain is one simulated device, indexed among the configured
		// devices (a hidden device keeps its index, as a GPU keeps its bus order).
		dev := &sdk.DeviceInfo{ID: d.id, Vendor: s.vendor, Model: "simulated " + d.kind + " (example meter)"}
		for _, o := range s.domains[:i] {
			if o.scope == sdk.ScopeDevice {
				dev.Index++
			}
		}
		if s.visibility != "" {
			dev.VisibilityEnv = map[string]string{s.visibility: d.id}
		}
		dom.Device = dev
	}
	if s.unavailable[d.id] {
		dom.Available = false
		dom.Reason = "configured unavailable (example meter key " + keyUnavailable + ")"
	}
	return dom
}

// profile returns the power profile of domain d in an ordinary or a baseline session.
func (s settings) profile(d domainSpec, baseline bool) profile {
	switch {
	case baseline && s.hasIdle:
		return constant(s.idlePowerW)
	case d.hasWatts:
		return constant(d.watts)
	case len(s.steps) > 0:
		p := profile{period: s.stepPeriod}
		for _, w := range s.steps {
			p.levels = append(p.levels, units.PowerFromWatts(w))
		}
		return p
	default:
		return constant(s.powerW)
	}
}

// maxPower is the highest power domain d can draw in any session.
func (s settings) maxPower(d domainSpec) units.Power {
	return max(s.profile(d, false).max(), s.profile(d, true).max())
}

// offer is the sampler's Offer: the configured domains and interval, and a source over the
// domains a request settles on (sdk/sampler applies the session policy).
func (m *meter) offer(context.Context) (*sampler.Offer, error) {
	s := m.settings()
	listed, at := s.listed()
	doms := make([]sdk.Domain, len(listed))
	byID := map[string]domainSpec{}
	for i, d := range listed {
		doms[i] = s.domain(d, at[i])
		byID[d.id] = d
	}
	policy := sampler.Policy{DefaultInterval: s.interval, MinInterval: minInterval, MaxInterval: maxInterval}
	return &sampler.Offer{Domains: doms, Policy: policy, Open: func(_ context.Context, plan sampler.Plan) (*sampler.Opened, error) {
		baseline := plan.Request.Label == baselineLabel
		src := &source{update: s.updatePeriod}
		var specs []sampler.Spec
		for _, dom := range plan.Read {
			specs = append(specs, sampler.Spec{Domain: dom, Counter: counter.Config{
				MaxPower: dom.MaxPower,
				// A counter that updates every period may show a whole period of energy right
				// after a read; two periods keep the reset bound clear of that.
				MinElapsed: max(2*s.updatePeriod, 10*time.Millisecond),
			}})
			src.domains = append(src.domains, sourceDomain{id: dom.ID, profile: s.profile(byID[dom.ID], baseline)})
		}
		if s.burnShare > 0 {
			src.release = m.burn.acquire(s.burnShare)
		}
		return &sampler.Opened{Source: src, Domains: specs, Interval: plan.Interval}, nil
	}}, nil
}

// fmtPowerW formats a power for messages.
func fmtPowerW(p units.Power) string { return fmtWatts(math.Round(p.Watts()*1e6) / 1e6) }
