package sdk

import (
	"context"
	"time"

	"github.com/lemctl/lemctl/sdk/units"
)

// Meter measures energy. Each call to Start opens a session; Stop ends it and returns the
// per-domain energy, the timeline of cumulative samples and health findings. A meter never
// reports a negative or silently estimated energy: a domain it cannot read is unavailable, with
// the reason.
type Meter interface {
	Inventory(ctx context.Context) ([]Domain, error)
	Environment(ctx context.Context) (*Environment, error)
	Start(ctx context.Context, req StartRequest) (*Session, error)
	// Mark records a labelled instant in the session (a batch boundary); the meter takes a
	// sample there so that energy can be split at it.
	Mark(ctx context.Context, session, label string) (int64, error)
	// Stop ends a session. Stopping an unknown or stopped session is ErrNotFound.
	Stop(ctx context.Context, session string) (*Measurement, error)
}

// Domain kinds.
const (
	DomainGPU     = "gpu"
	DomainPackage = "package"
	DomainDRAM    = "dram"
	DomainCore    = "core"
	DomainUncore  = "uncore"
	DomainPsys    = "psys"
	DomainNode    = "node"
	DomainOther   = "other"
)

// Scopes: what a domain covers, and so who else sees it.
const (
	ScopeDevice = "device" // one accelerator
	ScopeSocket = "socket" // one CPU socket, seen by every worker on the host
	ScopeNode   = "node"   // the whole host, seen by every worker on it
	// ScopeProcess: the processes of one worker (an estimate from their CPU time), seen by no
	// other worker.
	ScopeProcess = "process"
)

// Methods: how a domain's energy is obtained.
const (
	MethodCounter          = "counter"           // a hardware energy counter
	MethodPowerIntegration = "power_integration" // integrated power readings
	MethodEstimate         = "estimate"          // a model, never a reading
)

// Confidences of a domain's figure.
const (
	ConfidenceMeasured  = "measured"  // a counter or instantaneous power
	ConfidenceAveraged  = "averaged"  // integrated from a moving-average power reading
	ConfidenceEstimate  = "estimate"  // a model
	ConfidenceSimulated = "simulated" // a scripted or simulated source (tests, examples)
)

// Domain is one thing a meter measures. ID is stable per host (a device id, a RAPL zone path), so
// aggregation can deduplicate a domain several workers saw.
type Domain struct {
	ID           string
	Name         string
	Kind         string // a Domain* constant
	Scope        string // a Scope* constant
	Method       string // a Method* constant
	Confidence   string // a Confidence* constant
	Available    bool
	Reason       string       // why not available
	Resolution   units.Energy // smallest counter step
	UpdatePeriod time.Duration
	MaxPower     units.Power // 0 when unknown
	// Device is the accelerator a device-scoped domain measures; nil for host-level domains.
	// Several domains may describe the same device (same Device.ID).
	Device *DeviceInfo
}

// DeviceInfo describes an accelerator generically, so that the host can launch a worker on it
// without knowing its vendor (docs/protocol.md, "Devices"). The meter supplies every value.
type DeviceInfo struct {
	// ID is stable per host and unique among the meter's devices: a GPU UUID, "acme0".
	ID string `json:"id"`
	// Vendor is the lower-case vendor name ("nvidia", "amd", "intel", …); the host hands it to
	// the engine as the device kind.
	Vendor string `json:"vendor"`
	// Model is the human-readable model name.
	Model string `json:"model,omitempty"`
	// Index is the device's position in the meter's inventory (0, 1, …).
	Index int `json:"index"`
	// VisibilityEnv is the environment a worker must get to see only this device (e.g.
	// CUDA_VISIBLE_DEVICES=<uuid>, CUDA_DEVICE_ORDER=PCI_BUS_ID). The launcher sets exactly
	// these variables. Empty means the meter cannot isolate the device: the host can name it but
	// refuses to launch a worker on it.
	VisibilityEnv map[string]string `json:"visibility_env,omitempty"`
}

// Environment holds per-device facts and host-level facts (unprefixed: the host records <plugin>.<key>).
type Environment struct {
	Facts   map[string]string
	Devices []DeviceEnvironment
}

// DeviceEnvironment holds the facts about one device.
type DeviceEnvironment struct {
	ID    string // the domain or device id the facts belong to
	Facts map[string]string
}

// StartRequest opens a measurement session.
type StartRequest struct {
	// Interval is the fast sampling interval; 0 uses the plugin's configured or default one, a
	// negative one is ErrInvalidArgument, one outside the meter's bounds is moved to the bound
	// with an info finding (interval_raised, interval_shortened). A plugin never samples slower
	// than its wrap bound.
	Interval time.Duration
	// Domains restricts the session to these ids, each once; empty means every available
	// domain (the unavailable ones are listed unmeasured with their reason). An unknown id is
	// ErrInvalidArgument naming the valid ones. sdk/sampler's Policy implements this.
	Domains []string
	Label   string
}

// Session is an open measurement.
type Session struct {
	ID          string
	StartMonoNS int64
	Interval    time.Duration
	Domains     []Domain
}

// Mark is a labelled instant in a session.
type Mark struct {
	Label  string
	MonoNS int64
}

// Measurement is a closed session.
type Measurement struct {
	Session     string
	StartMonoNS int64
	StopMonoNS  int64
	Domains     []DomainEnergy
	Marks       []Mark
	Findings    []Finding
	// SamplerCPUNS is the CPU time the plugin process spent during the session, when it knows.
	SamplerCPUNS int64
}

// DomainEnergy is one domain's result for a session.
type DomainEnergy struct {
	Domain Domain
	// Energy over the session, from the first to the last sample; meaningless when !Available.
	Energy         units.Energy
	Samples        []Sample // cumulative since the session's first sample
	CounterUpdates int      // times the underlying counter changed value
	Health         []Finding
}

// Sample is one point of a domain's timeline. Energy is cumulative since the session's first
// sample, corrected for wraps and resets inside the plugin. Float fields are NaN when not read.
type Sample struct {
	MonoNS          int64
	Energy          units.Energy
	PowerW          float64 // instantaneous power
	AveragePowerW   float64 // the device's own moving average, when it has one
	TemperatureC    float64
	SMClockMHz      float64
	MemoryClockMHz  float64
	UtilizationPct  float64
	MemoryUsedBytes float64
	// ClockEventReasons are the device's clock-event reason bits (the ClockEvent* constants,
	// NVML's layout), valid only where ReasonsRead: a sample at which the reasons were not read
	// says nothing about throttling.
	ClockEventReasons uint64
	ReasonsRead       bool
}

// Clock-event reason bits of Sample.ClockEventReasons (NVML's nvmlClocksEventReason* layout).
// Those in ClockEventThrottling mean the clocks were held down by thermal or power limits.
const (
	ClockEventGPUIdle          uint64 = 0x1
	ClockEventAppClocksSetting uint64 = 0x2
	ClockEventSWPowerCap       uint64 = 0x4
	ClockEventHWSlowdown       uint64 = 0x8
	ClockEventSyncBoost        uint64 = 0x10
	ClockEventSWThermal        uint64 = 0x20
	ClockEventHWThermal        uint64 = 0x40
	ClockEventHWPowerBrake     uint64 = 0x80
	ClockEventDisplayClock     uint64 = 0x100

	// ClockEventThrottling is the mask of thermal and power-cap reasons.
	ClockEventThrottling = ClockEventSWPowerCap | ClockEventHWSlowdown | ClockEventSWThermal | ClockEventHWThermal | ClockEventHWPowerBrake
)

// ClockEventNames returns the names of the throttling reasons set in bits, in bit order.
func ClockEventNames(bits uint64) []string {
	var out []string
	for _, r := range []struct {
		bit  uint64
		name string
	}{{ClockEventSWPowerCap, "sw_power_cap"}, {ClockEventHWSlowdown, "hw_slowdown"}, {ClockEventSWThermal, "sw_thermal_slowdown"},
		{ClockEventHWThermal, "hw_thermal_slowdown"}, {ClockEventHWPowerBrake, "hw_power_brake_slowdown"}} {
		if bits&r.bit != 0 {
			out = append(out, r.name)
		}
	}
	return out
}

// Severities of findings.
const (
	SeverityError   = "error" // makes a result invalid
	SeverityWarning = "warning"
	SeverityInfo    = "info"
)

// Finding is a health or validity observation with a stable code (docs/methodology.md, "Validity").
type Finding struct {
	Code     string
	Severity string
	Message  string
	Advice   string
	Domain   string
	MonoNS   int64
}
