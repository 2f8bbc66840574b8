package rapl

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/counter"
	"github.com/lemctl/lemctl/sdk/sampler"
	"github.com/lemctl/lemctl/sdk/units"
)

// Defaults of the configuration keys.
const (
	DefaultRoot     = "/sys"
	DefaultInterval = 100 * time.Millisecond
	// MinInterval is the shortest interval the meter samples at: the counters' update period.
	MinInterval = UpdatePeriod
	// MaxInterval is the longest interval a session asks for; the wrap bound usually shortens it.
	MaxInterval = time.Hour
)

// unavailableID is the id of the one domain reported when the host has no RAPL zone at all.
const unavailableID = "rapl"

// Settings is the meter's effective configuration.
type Settings struct {
	Root     string        // the sysfs root, normally /sys
	Interval time.Duration // the default fast interval
	// Zones, when set, keeps only the zones that match one of its entries: a domain id
	// ("rapl:intel-rapl:0"), a zone directory ("intel-rapl:0"), a zone name or label
	// ("package-1", "package-0/dram") or a kind ("package", "dram", "psys", "core", "uncore").
	Zones []string
	// AssumedMaxPower is used for zones whose constraint files state no power.
	AssumedMaxPower units.Power
}

// DefaultSettings returns the settings of an unconfigured meter.
func DefaultSettings() Settings {
	return Settings{Root: DefaultRoot, Interval: DefaultInterval, AssumedMaxPower: DefaultAssumedMaxPower}
}

// Options tune a Meter; the zero value reads the real sysfs and logs to stderr.
type Options struct {
	// FS opens the sysfs root as a file system; nil means os.DirFS. Tests inject faults here.
	FS func(root string) fs.FS
	// Logger receives warnings (malformed zones, assumed max power); nil means an hclog logger
	// writing JSON to stderr, which go-plugin forwards to the host's log.
	Logger hclog.Logger
}

// Meter is the RAPL sdk.Meter. Start, Mark and Stop come from the sdk sampler.
type Meter struct {
	sampler.Sessions

	openFS func(string) fs.FS
	log    hclog.Logger

	mu     sync.Mutex
	set    Settings
	warned map[string]bool
}

var _ sdk.Meter = (*Meter)(nil)

// NewMeter returns a meter with the default settings.
func NewMeter(o Options) *Meter {
	m := &Meter{openFS: o.FS, log: o.Logger, set: DefaultSettings(), warned: map[string]bool{}}
	if m.openFS == nil {
		m.openFS = os.DirFS
	}
	if m.log == nil {
		m.log = sdk.Logger(Name)
	}
	m.Sessions.Offer = m.offer
	return m
}

// SetSettings replaces the meter's settings; sessions already open keep theirs.
func (m *Meter) SetSettings(s Settings) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.set = s
}

// Settings returns the meter's settings.
func (m *Meter) Settings() Settings {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.set
	s.Zones = slices.Clone(s.Zones)
	return s
}

// view is one scan of the zones under the current settings.
type view struct {
	set   Settings
	fsys  fs.FS
	scan  Scan
	zones []Zone // after the zones filter
	// problem, when no zone is left, is the reason of the single unavailable domain.
	problem string
}

func (m *Meter) look() view {
	set := m.Settings()
	v := view{set: set, fsys: m.openFS(set.Root)}
	v.scan = ScanZones(v.fsys, set.Root, set.AssumedMaxPower)
	v.problem = v.scan.Problem
	for _, z := range v.scan.Zones {
		if len(set.Zones) == 0 || matchesAny(z, set.Zones) {
			v.zones = append(v.zones, z)
		}
	}
	if v.problem == "" && len(v.zones) == 0 {
		var have []string
		for _, z := range v.scan.Zones {
			have = append(have, z.Dir+" ("+z.Label+")")
		}
		v.problem = fmt.Sprintf("no RAPL zone matches the zones setting %q; this host has %s", set.Zones, strings.Join(have, ", "))
	}
	m.warn(v)
	return v
}

// warn logs each problem of the tree once per meter.
func (m *Meter) warn(v view) {
	m.mu.Lock()
	defer m.mu.Unlock()
	once := func(key, msg string, args ...any) {
		if !m.warned[key] {
			m.warned[key] = true
			m.log.Warn(msg, args...)
		}
	}
	onceInfo := func(key, msg string, args ...any) {
		if !m.warned[key] {
			m.warned[key] = true
			m.log.Info(msg, args...)
		}
	}
	for _, s := range v.scan.Skipped {
		once("skip "+s.Dir, "skipping malformed RAPL zone", "dir", s.Dir, "reason", s.Reason)
	}
	for _, d := range v.scan.Duplicates {
		onceInfo("dup "+d, "dropping RAPL zone that duplicates an intel-rapl zone", "dir", d)
	}
	for _, z := range v.zones {
		for _, n := range z.Notes {
			once("note "+z.Dir+n, "RAPL zone problem", "zone", z.ID(), "problem", n)
		}
		for _, n := range z.Ignored {
			onceInfo("ignored "+z.Dir+n, "RAPL zone constraint ignored", "zone", z.ID(), "constraint", n)
		}
		if z.MaxPowerAssumed && z.Available {
			onceInfo("assumed "+z.Dir, "RAPL zone states no maximum power; assuming one for the wrap bound and reset detection",
				"zone", z.ID(), "assumed_max_power", z.MaxPower.String())
		}
		if !z.Available {
			once("unavail "+z.Dir+z.Reason, "RAPL zone unavailable", "zone", z.ID(), "reason", z.Reason)
		}
	}
	if v.problem != "" {
		once("problem "+v.problem, "no RAPL energy", "reason", v.problem)
	}
}

// domains lists the view's domains: one per zone, or one unavailable domain saying why there
// is none.
func (v view) domains() []sdk.Domain {
	if v.problem != "" {
		return []sdk.Domain{{ID: unavailableID, Name: "RAPL", Kind: sdk.DomainPackage, Scope: sdk.ScopeSocket,
			Method: sdk.MethodCounter, Confidence: sdk.ConfidenceMeasured, Available: false, Reason: v.problem,
			Resolution: units.Microjoule, UpdatePeriod: UpdatePeriod}}
	}
	out := make([]sdk.Domain, 0, len(v.zones))
	for _, z := range v.zones {
		out = append(out, z.Domain())
	}
	return out
}

// Inventory lists one domain per RAPL zone (mmio duplicates dropped, filtered by the zones
// setting). With no zone at all it lists one unavailable domain whose reason says why.
func (m *Meter) Inventory(ctx context.Context) ([]sdk.Domain, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return m.look().domains(), nil
}

// Environment reports the powercap facts: per zone its name, files, range, limits and the wrap
// bound; for the host, the zones found, skipped and dropped.
func (m *Meter) Environment(ctx context.Context) (*sdk.Environment, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	v := m.look()
	env := &sdk.Environment{Facts: map[string]string{
		"sysfs_root": v.set.Root,
		"zones":      strconv.Itoa(len(v.zones)),
	}}
	if v.problem != "" {
		env.Facts["problem"] = v.problem
	}
	if len(v.scan.Skipped) > 0 {
		var s []string
		for _, k := range v.scan.Skipped {
			s = append(s, k.Dir)
		}
		env.Facts["skipped_zones"] = strings.Join(s, ",")
	}
	if len(v.scan.Duplicates) > 0 {
		env.Facts["duplicate_zones_dropped"] = strings.Join(v.scan.Duplicates, ",")
	}
	var types []string
	for _, z := range v.zones {
		if !slices.Contains(types, z.ControlType) {
			types = append(types, z.ControlType)
		}
		env.Devices = append(env.Devices, sdk.DeviceEnvironment{ID: z.ID(), Facts: zoneFacts(v.set.Root, z)})
	}
	if len(types) > 0 {
		env.Facts["control_types"] = strings.Join(types, ",")
	}
	return env, nil
}

func zoneFacts(root string, z Zone) map[string]string {
	f := map[string]string{
		"zone":             z.Dir,
		"path":             filepath.Join(root, filepath.FromSlash(z.File(""))),
		"name":             z.Name,
		"label":            z.Label,
		"kind":             z.Kind,
		"scope":            z.Scope,
		"available":        strconv.FormatBool(z.Available),
		"max_power_w":      strconv.FormatFloat(z.MaxPower.Watts(), 'f', -1, 64),
		"max_power_source": map[bool]string{true: "assumed (no constraint states one)", false: "constraint files"}[z.MaxPowerAssumed],
	}
	if z.MaxRange > 0 {
		f["max_energy_range_uj"] = strconv.FormatUint(uint64(z.MaxRange), 10)
		f["wrap_period_at_max_power"] = counter.WrapPeriod(z.MaxRange, z.MaxPower).Round(time.Millisecond).String()
		f["poll_bound"] = z.PollBound().Round(time.Millisecond).String()
	} else {
		f["max_energy_range_uj"] = "unknown"
	}
	if !z.Available {
		f["reason"] = z.Reason
	}
	if z.Enabled != "" {
		f["power_limiting_enabled"] = z.Enabled
	}
	for _, c := range z.Constraints {
		p := "constraint_" + strconv.Itoa(c.Index) + "_"
		if c.Name != "" {
			f[p+"name"] = c.Name
		}
		if c.PowerLimit > 0 {
			f[p+"power_limit_w"] = strconv.FormatFloat(c.PowerLimit.Watts(), 'f', -1, 64)
		}
		if c.MaxPower > 0 {
			f[p+"max_power_w"] = strconv.FormatFloat(c.MaxPower.Watts(), 'f', -1, 64)
		}
		if c.TimeWindow > 0 {
			f[p+"time_window"] = c.TimeWindow.String()
		}
	}
	if len(z.Notes) > 0 {
		f["problems"] = strings.Join(z.Notes, "; ")
	}
	if len(z.Ignored) > 0 {
		f["ignored_constraints"] = strings.Join(z.Ignored, "; ")
	}
	return f
}

// offer is the sampler's Offer: one scan of the zones, the interval policy, and a Source over
// the zones a request settles on (sdk/sampler filters the domains and settles the interval).
func (m *Meter) offer(ctx context.Context) (*sampler.Offer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	v := m.look()
	policy := sampler.Policy{DefaultInterval: v.set.Interval, MinInterval: MinInterval, MaxInterval: MaxInterval}
	return &sampler.Offer{Domains: v.domains(), Policy: policy, Open: func(_ context.Context, plan sampler.Plan) (*sampler.Opened, error) {
		return m.open(v, plan), nil
	}}, nil
}

// open returns a Source over the plan's zones, at the plan's interval shortened to the wrap
// bound of the fastest-wrapping zone.
func (m *Meter) open(v view, plan sampler.Plan) *sampler.Opened {
	interval := plan.Interval
	var findings []sdk.Finding
	info := func(code, msg, domain string) {
		findings = append(findings, sdk.Finding{Code: code, Severity: sdk.SeverityInfo, Message: msg, Domain: domain})
	}
	for _, s := range v.scan.Skipped {
		info("zone_skipped", s.Reason, "")
	}
	byID := map[string]Zone{}
	for _, z := range v.zones {
		byID[z.ID()] = z
	}
	var zones []Zone
	for _, d := range plan.Read {
		zones = append(zones, byID[d.ID])
	}

	// Never sample slower than the fastest-wrapping zone allows.
	bound, boundZone := time.Duration(0), ""
	for _, z := range zones {
		if b := z.PollBound(); b > 0 && (bound == 0 || b < bound) {
			bound, boundZone = b, z.ID()
		}
	}
	if bound > 0 && interval > bound {
		msg := fmt.Sprintf("sampling interval shortened from %s to %s: %s wraps after %s at its max power, and it is read at least twice per wrap",
			interval, max(bound, MinInterval), boundZone, 2*bound)
		m.log.Info(msg)
		info("interval_shortened", msg, boundZone)
		interval = max(bound, MinInterval)
		if bound < MinInterval {
			msg := fmt.Sprintf("%s would wrap after %s at its max power, faster than the %s the meter can sample: a wrap may be missed and would then be flagged counter_reset", boundZone, 2*bound, MinInterval)
			m.log.Warn(msg)
			findings = append(findings, sdk.Finding{Code: "wrap_faster_than_sampling", Severity: sdk.SeverityWarning, Message: msg, Domain: boundZone})
		}
	}

	specs := make([]sampler.Spec, 0, len(zones))
	for _, z := range zones {
		specs = append(specs, sampler.Spec{Domain: z.Domain(), Counter: counter.Config{Range: z.MaxRange, MaxPower: z.MaxPower}})
		if z.MaxPowerAssumed {
			info("max_power_assumed", fmt.Sprintf("%s states no maximum power; assumed %s for its wrap bound and reset detection", z.ID(), z.MaxPower), z.ID())
		}
		for _, n := range z.Notes {
			findings = append(findings, sdk.Finding{Code: "zone_problem", Severity: sdk.SeverityWarning, Message: n, Domain: z.ID()})
		}
	}
	return &sampler.Opened{Source: NewSource(v.fsys, v.set.Root, zones), Domains: specs, Interval: interval, Findings: findings}
}

// matchesAny reports whether z is selected by one of the zones filter entries.
func matchesAny(z Zone, filter []string) bool {
	for _, f := range filter {
		if f == z.ID() || f == z.Dir || f == z.Name || f == z.Label || f == z.Kind {
			return true
		}
	}
	return false
}
