package estimate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/clock"
	"github.com/lemctl/lemctl/sdk/counter"
	"github.com/lemctl/lemctl/sdk/sampler"
	"github.com/lemctl/lemctl/sdk/units"
)

// Defaults and bounds.
const (
	DefaultProcRoot = "/proc"
	DefaultInterval = 200 * time.Millisecond
	// MinInterval is one clock tick: CPU times do not change faster.
	MinInterval = time.Second / ClockTicksPerSecond
	MaxInterval = time.Hour
)

// Settings is the meter's effective configuration.
type Settings struct {
	ProcRoot string
	Interval time.Duration
	// WattsPerCore is the configured per-core power; 0 means the table's entry for the CPU.
	WattsPerCore float64
	// PID is the root of the measured process tree; 0 means the plugin's parent (the worker).
	PID int
}

// DefaultSettings returns the settings of an unconfigured meter.
func DefaultSettings() Settings {
	return Settings{ProcRoot: DefaultProcRoot, Interval: DefaultInterval}
}

// Options tune a Meter; the zero value reads /proc and logs to stderr.
type Options struct {
	// FS opens the proc root as a file system; nil means os.DirFS. Tests inject fakes here.
	FS func(root string) fs.FS
	// Self and Parent are this process's pid and its parent's; 0 means os.Getpid, os.Getppid.
	Self, Parent int
	Logger       hclog.Logger
}

// Meter is the estimate sdk.Meter. Start, Mark and Stop come from the sdk sampler.
type Meter struct {
	sampler.Sessions

	openFS       func(string) fs.FS
	self, parent int
	log          hclog.Logger

	mu  sync.Mutex
	set Settings
}

var _ sdk.Meter = (*Meter)(nil)

// NewMeter returns a meter with the default settings.
func NewMeter(o Options) *Meter {
	m := &Meter{openFS: o.FS, self: o.Self, parent: o.Parent, log: o.Logger, set: DefaultSettings()}
	if m.openFS == nil {
		m.openFS = os.DirFS
	}
	if m.self == 0 {
		m.self = os.Getpid()
	}
	if m.parent == 0 {
		m.parent = os.Getppid()
	}
	if m.log == nil {
		m.log = sdk.Logger(Name)
	}
	m.Sessions.Offer = m.offer
	return m
}

// SetSettings replaces the meter's settings; open sessions keep theirs.
func (m *Meter) SetSettings(s Settings) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.set = s
}

// Settings returns the meter's settings.
func (m *Meter) Settings() Settings {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.set
}

// view is the meter's state under its current settings.
type view struct {
	set    Settings
	fsys   fs.FS
	root   int
	model  string
	watts  float64 // per core; 0 when unknown
	source string  // where watts comes from
	reason string  // why the domain is unavailable; "" when available
}

func (m *Meter) look() view {
	v := view{set: m.Settings()}
	v.fsys = m.openFS(v.set.ProcRoot)
	v.root = v.set.PID
	if v.root == 0 {
		v.root = m.parent
	}
	v.model = cpuModel(v.fsys)
	switch e, ok := lookup(v.model); {
	case v.set.WattsPerCore > 0:
		v.watts, v.source = v.set.WattsPerCore, "configuration (energy.estimate.watts_per_core)"
	case ok:
		v.watts, v.source = e.WattsPerCore, fmt.Sprintf("table: %s → %.4g W per core", e.Source, e.WattsPerCore)
	default:
		model := strconv.Quote(v.model)
		if v.model == "" {
			model = "unknown (no model name in " + v.set.ProcRoot + "/cpuinfo)"
		}
		v.reason = fmt.Sprintf("no per-core power: watts_per_core is not configured and the CPU model %s is not in the table (docs/estimate.md); set [energy.estimate] watts_per_core", model)
	}
	if v.reason == "" {
		if _, err := readStat(v.fsys, v.root); err != nil {
			v.reason = fmt.Sprintf("cannot read the CPU time of the worker process %d under %s: %v", v.root, v.set.ProcRoot, err)
		}
	}
	return v
}

// domainID is the id of the estimate of the process tree rooted at pid: one per worker.
func domainID(pid int) string { return "estimate:cpu:" + strconv.Itoa(pid) }

func (v view) domain() sdk.Domain {
	d := sdk.Domain{ID: domainID(v.root), Name: fmt.Sprintf("CPU time of process %d and its descendants × watts per core", v.root),
		Kind: sdk.DomainPackage, Scope: sdk.ScopeProcess, Method: sdk.MethodEstimate, Confidence: sdk.ConfidenceEstimate,
		Available: v.reason == "", Reason: v.reason, UpdatePeriod: MinInterval}
	if v.watts > 0 {
		// One clock tick of one core.
		d.Resolution = units.Energy(ticksToMicrojoules(1, v.watts))
	}
	return d
}

// Inventory lists the one estimate domain, unavailable with the reason when no per-core power is
// known or the worker's CPU time cannot be read.
func (m *Meter) Inventory(ctx context.Context) ([]sdk.Domain, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return []sdk.Domain{m.look().domain()}, nil
}

// Environment reports the CPU model, the per-core power and where it comes from.
func (m *Meter) Environment(ctx context.Context) (*sdk.Environment, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	v := m.look()
	f := map[string]string{"proc_root": v.set.ProcRoot, "pid": strconv.Itoa(v.root), "cpu_model": v.model,
		"clock_ticks_per_s": strconv.Itoa(ClockTicksPerSecond)}
	if v.watts > 0 {
		f["watts_per_core"] = strconv.FormatFloat(v.watts, 'g', -1, 64)
		f["watts_per_core_source"] = v.source
	}
	if v.reason != "" {
		f["problem"] = v.reason
	}
	return &sdk.Environment{Facts: f}, nil
}

func (m *Meter) offer(ctx context.Context) (*sampler.Offer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	v := m.look()
	policy := sampler.Policy{DefaultInterval: v.set.Interval, MinInterval: MinInterval, MaxInterval: MaxInterval}
	return &sampler.Offer{Domains: []sdk.Domain{v.domain()}, Policy: policy, Open: func(_ context.Context, plan sampler.Plan) (*sampler.Opened, error) {
		var specs []sampler.Spec
		for _, d := range plan.Read {
			specs = append(specs, sampler.Spec{Domain: d, Counter: counter.Config{}, Cumulative: true})
		}
		return &sampler.Opened{Source: &source{fsys: v.fsys, root: v.root, self: m.self, watts: v.watts, id: domainID(v.root)},
			Domains: specs, Interval: plan.Interval}, nil
	}}, nil
}

// source reads the process tree's CPU time as a cumulative energy counter in µJ.
type source struct {
	fsys       fs.FS
	root, self int
	watts      float64
	id         string
}

func (s *source) Read(ctx context.Context, _ bool) ([]sampler.Reading, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := sampler.NewReading(s.id)
	ticks, _, err := treeTicks(s.fsys, s.root, s.self)
	r.MonoNS = clock.Mono()
	if err != nil {
		r.Err = errors.Join(errors.New("read the worker's CPU time"), err)
	} else {
		r.Counter = ticksToMicrojoules(ticks, s.watts)
	}
	return []sampler.Reading{r}, nil
}

func (s *source) Close() error { return nil }
