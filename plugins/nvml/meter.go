package nvml

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/counter"
	"github.com/lemctl/lemctl/sdk/sampler"
)

// Defaults and bounds of the settings.
const (
	DefaultInterval = 100 * time.Millisecond
	// MinInterval is the shortest fast interval: NVML's power readings update every 10–100 ms.
	MinInterval = 10 * time.Millisecond
	// MaxInterval is the longest fast interval.
	MaxInterval = time.Minute
)

// EnvRunPID, when the host sets it, is the pid of the top process of the run (lemctl run); its
// whole process tree may use the measured GPUs without a foreign_gpu_process finding.
const EnvRunPID = "LEM_RUN_PID"

// unavailableID is the id of the single domain reported when there is no GPU to measure.
const unavailableID = "nvml"

// Settings is the meter's effective configuration.
type Settings struct {
	// LibraryPath is the NVML library to load; "" searches the loader's default path, then
	// DriverFolders.
	LibraryPath string
	Interval    time.Duration
	// Devices, when set, are the GPUs to measure (indices or UUIDs) and override
	// CUDA_VISIBLE_DEVICES.
	Devices []string
	// AllowedPIDs are extra roots of the process trees whose GPU use is not foreign.
	AllowedPIDs []int
}

// DefaultSettings returns the settings of an unconfigured meter.
func DefaultSettings() Settings {
	return Settings{Interval: DefaultInterval}
}

// Options are the meter's seams; the zero value uses the real library, environment and /proc.
type Options struct {
	// Open opens an NVML library (default OpenLibrary, go-nvml). Tests return fake Drivers.
	Open LibraryOpener
	// LookupEnv reads the environment (default os.LookupEnv); CUDA_VISIBLE_DEVICES comes from it.
	LookupEnv func(string) (string, bool)
	// Proc is the proc file system (default os.DirFS("/proc")).
	Proc fs.FS
	// ParentPID is the root of the process tree whose GPU use is ours (default os.Getppid()).
	ParentPID int
	// Stat checks library candidates (default os.Stat).
	Stat   func(string) (fs.FileInfo, error)
	Logger hclog.Logger
}

// Meter is the NVML sdk.Meter. Start, Mark and Stop come from the sdk sampler; each session's
// Finish adds the GPU health findings.
type Meter struct {
	sampler.Sessions

	opts Options
	log  hclog.Logger

	mu      sync.Mutex
	set     Settings
	loaded  bool
	backend *backend
}

// backend is NVML after the one load attempt of the process.
type backend struct {
	lib     *library // nil when problem is set
	problem error
	gpus    []*gpu
	facts   map[string]string
}

var _ sdk.Meter = (*Meter)(nil)

// NewMeter returns a meter with the default settings. NVML is loaded on first use.
func NewMeter(o Options) *Meter {
	if o.Open == nil {
		o.Open = OpenLibrary
	}
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	if o.Proc == nil {
		o.Proc = os.DirFS("/proc")
	}
	if o.ParentPID == 0 {
		o.ParentPID = os.Getppid()
	}
	if o.Stat == nil {
		o.Stat = os.Stat
	}
	m := &Meter{opts: o, log: o.Logger, set: DefaultSettings()}
	if m.log == nil {
		m.log = sdk.Logger(Name)
	}
	m.Offer = m.offer
	return m
}

// Settings returns the meter's settings.
func (m *Meter) Settings() Settings {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.set
	s.Devices = slices.Clone(s.Devices)
	s.AllowedPIDs = slices.Clone(s.AllowedPIDs)
	return s
}

// SetSettings replaces the settings. The library cannot change once NVML was loaded (its
// symbols stay bound to the first library of the process).
func (m *Meter) SetSettings(s Settings) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.loaded && s.LibraryPath != m.set.LibraryPath {
		return fmt.Errorf("library_path cannot change from %q to %q: NVML was already loaded in this plugin process", m.set.LibraryPath, s.LibraryPath)
	}
	m.set = s
	return nil
}

// load initialises NVML once per process and discovers the GPUs. A failure is kept: no NVML
// call is ever made after a failed Init.
func (m *Meter) load() *backend {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.loaded {
		return m.backend
	}
	m.loaded = true
	b := &backend{facts: map[string]string{}}
	m.backend = b
	lib, err := initLibrary(m.opts.Open, m.set.LibraryPath, m.opts.Stat)
	if err != nil {
		b.problem = err
		var ie *initError
		if errors.As(err, &ie) {
			b.facts["libraries_tried"] = strings.Join(ie.tried, "; ")
		}
		m.log.Warn("no NVIDIA GPU energy", "reason", err.Error())
		return b
	}
	b.lib = lib
	b.facts["library"] = displayPath(lib.path)
	vs := lib.drv.Versions()
	for k, v := range map[string]string{"driver_version": vs.Driver, "nvml_version": vs.NVML, "cuda_driver_version": vs.CUDADriver} {
		if v != "" {
			b.facts[k] = v
		}
	}
	gpus, err := discover(lib.drv)
	if err != nil {
		b.problem = fmt.Errorf("enumerate GPUs: %w", err)
		return b
	}
	b.gpus = gpus
	if len(gpus) == 0 {
		b.problem = fmt.Errorf("NVML (driver %s) sees no GPU", b.facts["driver_version"])
	}
	for _, g := range gpus {
		if !g.available() {
			m.log.Warn("GPU energy unavailable", "gpu", g.id(), "reason", g.reason)
		} else if g.confidence == sdk.ConfidenceAveraged {
			m.log.Warn("GPU has no energy counter and no instant power: integrating NVML's ~1 s moving-average power", "gpu", g.id())
		}
	}
	return b
}

// Close shuts NVML down when it was initialised. The meter is unusable afterwards.
func (m *Meter) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.backend == nil || m.backend.lib == nil {
		return nil
	}
	lib := m.backend.lib
	m.backend = &backend{problem: errors.New("the meter was closed"), facts: map[string]string{}}
	return lib.drv.Shutdown()
}

// view is the meter's domains under the current settings.
type view struct {
	set     Settings
	b       *backend
	sel     selection
	problem string // the reason of the single unavailable domain, when there is no GPU
}

func (m *Meter) look() view {
	b := m.load()
	set := m.Settings()
	v := view{set: set, b: b}
	if b.problem != nil {
		v.problem = b.problem.Error()
		return v
	}
	cvd, cvdSet := m.opts.LookupEnv("CUDA_VISIBLE_DEVICES")
	v.sel = selectGPUs(b.gpus, set.Devices, cvd, cvdSet)
	if len(v.sel.gpus) == 0 && len(v.sel.missing) == 0 {
		v.problem = v.sel.note
		if v.problem == "" {
			v.problem = "no GPU selected"
		}
	}
	return v
}

func (v view) domains() []sdk.Domain {
	if v.problem != "" {
		return []sdk.Domain{unavailableDomain(unavailableID, v.problem)}
	}
	var out []sdk.Domain
	for _, g := range v.sel.gpus {
		out = append(out, g.domain())
	}
	for _, md := range v.sel.missing {
		out = append(out, unavailableDomain(unavailableID+":"+md.entry, "devices entry "+strconv.Quote(md.entry)+": "+md.reason))
	}
	return out
}

func unavailableDomain(id, reason string) sdk.Domain {
	return sdk.Domain{ID: id, Name: "NVIDIA GPU", Kind: sdk.DomainGPU, Scope: sdk.ScopeDevice, Method: sdk.MethodCounter,
		Confidence: sdk.ConfidenceMeasured, Available: false, Reason: reason, UpdatePeriod: CounterUpdatePeriod}
}

// Inventory lists one domain per selected GPU; with no GPU to measure, one unavailable domain
// ("nvml") whose reason says why.
func (m *Meter) Inventory(ctx context.Context) ([]sdk.Domain, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return m.look().domains(), nil
}

// Environment reports the driver and, per selected GPU, its identity, limits and modes.
func (m *Meter) Environment(ctx context.Context) (*sdk.Environment, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	v := m.look()
	env := &sdk.Environment{Facts: map[string]string{}}
	for k, val := range v.b.facts {
		env.Facts[k] = val
	}
	if v.problem != "" {
		env.Facts["problem"] = v.problem
	}
	if cvd, ok := m.opts.LookupEnv("CUDA_VISIBLE_DEVICES"); ok {
		env.Facts["cuda_visible_devices"] = cvd
	}
	if v.sel.source != "" {
		env.Facts["device_selection"] = v.sel.source
	}
	if v.sel.note != "" {
		env.Facts["device_selection_note"] = v.sel.note
	}
	env.Facts["gpus_seen"] = strconv.Itoa(len(v.b.gpus))
	for _, g := range v.sel.gpus {
		f := deviceFacts(g)
		for _, k := range []string{"driver_version", "cuda_driver_version"} {
			if val, ok := v.b.facts[k]; ok {
				f[k] = val
			}
		}
		env.Devices = append(env.Devices, sdk.DeviceEnvironment{ID: g.id(), Facts: f})
	}
	return env, nil
}

// finish is a session's sampler.Opened.Finish: one last look at the GPUs' processes, then the
// health findings of every measured GPU.
func finish(meas *sdk.Measurement, src *source) {
	src.checkProcesses()
	byID := map[string]*entry{}
	for _, e := range src.entries {
		byID[e.id] = e
	}
	for i := range meas.Domains {
		de := &meas.Domains[i]
		e := byID[de.Domain.ID]
		if e == nil || e.g == nil {
			continue
		}
		found := health(de, e, src)
		de.Health = append(de.Health, found...)
		meas.Findings = append(meas.Findings, found...)
	}
}

// offer is the sampler's Offer: one look at the GPUs, the interval policy, and a source over
// the GPUs a request settles on (sdk/sampler filters the domains and settles the interval).
func (m *Meter) offer(ctx context.Context) (*sampler.Offer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	v := m.look()
	def := v.set.Interval
	if def <= 0 {
		def = DefaultInterval
	}
	policy := sampler.Policy{DefaultInterval: def, MinInterval: MinInterval, MaxInterval: MaxInterval}
	return &sampler.Offer{Domains: v.domains(), Policy: policy, Open: func(_ context.Context, plan sampler.Plan) (*sampler.Opened, error) {
		return m.open(v, plan), nil
	}}, nil
}

// open returns a source over the plan's GPUs.
func (m *Meter) open(v view, plan sampler.Plan) *sampler.Opened {
	gpuByID := map[string]*gpu{}
	for _, g := range v.sel.gpus {
		gpuByID[g.id()] = g
	}
	var entries []*entry
	var specs []sampler.Spec
	for _, d := range plan.Read {
		e := &entry{id: d.ID}
		if g := gpuByID[d.ID]; g != nil && g.available() {
			e.g = g
			if on, err := g.drv.Persistence(g.index); err == nil && !on {
				e.persistenceOff = true
			}
		} else {
			e.reason = fmt.Errorf("GPU %s is no longer available", d.ID)
		}
		entries = append(entries, e)
		specs = append(specs, sampler.Spec{Domain: d, Counter: counter.Config{MaxPower: d.MaxPower, MinElapsed: 2 * CounterUpdatePeriod}})
	}
	roots := []int{m.opts.ParentPID, os.Getpid()}
	// A host that runs several workers names the top of its run, so that a sibling worker's
	// engine on a GPU this meter also sees (a CPU worker sees every GPU) is not foreign.
	if v, ok := m.opts.LookupEnv(EnvRunPID); ok {
		if pid, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && pid > 1 {
			roots = append(roots, pid)
		}
	}
	tree := newProcTree(m.opts.Proc, roots...)
	for _, p := range v.set.AllowedPIDs {
		tree.addRoot(p)
	}
	src := newSource(entries, tree)
	src.checkProcesses()
	return &sampler.Opened{Source: src, Domains: specs, Interval: plan.Interval,
		Finish: func(meas *sdk.Measurement) { finish(meas, src) }}
}
