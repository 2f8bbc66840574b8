package launch

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/lemctl/lemctl/host/atomicfile"
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/hostclient"
)

// Spec is everything one worker needs, resolved by the parent: the worker never re-reads the
// experiment file, never rediscovers plugins and never re-samples the dataset, so every worker
// of a run measures the same configuration on its own exact shard.
type Spec struct {
	ExperimentID string          `json:"experiment_id"`
	Name         string          `json:"name"`
	Rank         int             `json:"rank"`
	WorldSize    int             `json:"world_size"`
	Device       DeviceSlot      `json:"device"`
	Threads      int             `json:"threads"`
	CPUs         []int           `json:"cpus,omitempty"`
	Config       json.RawMessage `json:"config"`
	ConfigHash   string          `json:"config_hash"`
	Overrides    []Override      `json:"overrides,omitempty"`

	Model      ModelSpec   `json:"model"`
	Engine     PluginRef   `json:"engine"`
	Meters     []PluginRef `json:"meters"`
	Repository PluginRef   `json:"repository"`

	Dataset DatasetRef   `json:"dataset"`
	Prompts []sdk.Prompt `json:"prompts"` // this rank's shard, in order

	Workload  WorkloadSpec  `json:"workload"`
	Lifecycle LifecycleSpec `json:"lifecycle"`
	Energy    EnergySpec    `json:"energy"`
	Validity  ValiditySpec  `json:"validity"`

	// StallTimeoutS is launch.stall_timeout_s: the parent's watchdog limit, from which the worker
	// sets its heartbeat period (0: the watchdog is off and no heartbeat is sent).
	StallTimeoutS float64 `json:"stall_timeout_s,omitempty"`

	// CallTimeouts are launch.call_timeouts: the worker's deadline on each plugin call, in
	// seconds per kind of call (0: none of its own). Nil (a spec from before the key): the
	// defaults of sdk/hostclient.
	CallTimeouts *CallTimeouts `json:"call_timeouts,omitempty"`

	// PauseAt is the test-only pause hook ($LEM_TEST_PAUSE), copied here for the record.
	PauseAt string `json:"pause_at,omitempty"`

	// Slurm is set when the worker runs as a task of a Slurm step (launch.launcher = "slurm"):
	// where the parent's coordinator listens and the run's secret (slurm.go).
	Slurm *SlurmSpec `json:"slurm,omitempty"`
}

// Override records a config value set on the command line.
type Override struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Source string `json:"source"`
}

// Device kinds of a DeviceSlot.
const (
	DeviceCPU         = "cpu"    // the host's CPUs
	DeviceAccelerator = "device" // an accelerator an energy plugin's inventory reports
)

// DeviceSlot is the device a worker runs on. The host knows no vendor: an accelerator is what an
// energy plugin reported (sdk.DeviceInfo), and Env is exactly the environment that plugin gave
// to make a worker see only that device.
type DeviceSlot struct {
	Kind   string            `json:"kind"`           // DeviceCPU or DeviceAccelerator
	Index  int               `json:"index"`          // the device's index in its meter's inventory; -1 for cpu
	UUID   string            `json:"uuid,omitempty"` // the device id its meter reports (a GPU UUID, "acme0")
	Name   string            `json:"name,omitempty"` // the model name
	Vendor string            `json:"vendor,omitempty"`
	Meter  string            `json:"meter,omitempty"` // the energy plugin that reported the device
	Env    map[string]string `json:"env,omitempty"`   // the device's visibility environment
	Slot   string            `json:"slot"`            // unique per (host, device) in the run, e.g. "cpu:0", "acme:acme0:0"
}

// Result is the slot as a result records it; seen is the visibility environment as the worker
// process saw it (nil in the parent, which only intends it).
func (d DeviceSlot) Result(seen map[string]string) results.Device {
	return results.Device{Kind: d.Kind, Index: d.Index, UUID: d.UUID, Name: d.Name, Vendor: d.Vendor, Meter: d.Meter,
		Env: d.Env, SeenEnv: seen, Slot: d.Slot}
}

// PluginRef pins a plugin binary and carries its configuration table.
type PluginRef struct {
	Name    string         `json:"name"`
	Path    string         `json:"path"`
	SHA256  string         `json:"sha256"`
	Version string         `json:"version"`
	Kinds   []string       `json:"kinds"`
	Config  map[string]any `json:"config"`
	// IntervalNS is, for a meter, the sampling interval the worker asks for at each Start,
	// settled by the parent: [energy].interval, or 0 (the meter's configured interval) when the
	// meter's own table sets the key its schema marks SamplingInterval. 0 for other kinds.
	IntervalNS int64 `json:"interval_ns,omitempty"`
	// Unavailable, for a meter, is set when the parent found none of its domains available on
	// this host (the workers are local: same host, same drivers): the worker does not start the
	// meter and records its domains unmeasured with the meter's reasons and facts, as the meter
	// itself would have.
	Unavailable *UnavailableMeter `json:"unavailable,omitempty"`
}

// UnavailableMeter is what the parent learned of a meter with no domain available here.
type UnavailableMeter struct {
	Domains []sdk.Domain      `json:"domains"`
	Facts   map[string]string `json:"facts,omitempty"`
}

// ModelSpec names the model and the loader plugin that resolves it.
type ModelSpec struct {
	Ref    string    `json:"ref"`
	Loader PluginRef `json:"loader"`
	// Resolved is the parent's resolution of Ref, so that a worker on the same host need not
	// resolve (and hash) the model again; nil when the parent did not resolve it.
	Resolved *ResolvedModel `json:"resolved,omitempty"`
}

// ResolvedModel is a model resolved by the parent, valid for a worker that runs on the same
// boot of the same host while every file the model is made of keeps the size and modification
// time it had when it was hashed. Anything else and the worker resolves the model itself.
type ResolvedModel struct {
	Artifact sdk.Artifact `json:"artifact"`
	BootID   string       `json:"boot_id"`
	Files    []FileStamp  `json:"files"`
}

// FileStamp is a file's size and modification time.
type FileStamp struct {
	Path      string `json:"path"`
	Size      int64  `json:"size"`
	ModTimeNS int64  `json:"mod_time_ns"`
}

// NewResolvedModel stamps the files of a, resolved on the boot bootID.
func NewResolvedModel(a sdk.Artifact, bootID string) (*ResolvedModel, error) {
	r := &ResolvedModel{Artifact: a, BootID: bootID}
	for _, f := range a.Files {
		st, err := os.Stat(f)
		if err != nil {
			return nil, err
		}
		r.Files = append(r.Files, FileStamp{Path: f, Size: st.Size(), ModTimeNS: st.ModTime().UnixNano()})
	}
	return r, nil
}

// UsableOn returns nil when the resolution holds on the boot bootID: same boot, and every file
// unchanged in size and modification time; else why not.
func (r *ResolvedModel) UsableOn(bootID string) error {
	switch {
	case r == nil:
		return fmt.Errorf("the parent did not resolve the model")
	case r.BootID == "" || r.BootID != bootID:
		return fmt.Errorf("resolved on another host or boot (%q, here %q)", r.BootID, bootID)
	case len(r.Files) == 0:
		return fmt.Errorf("the resolution lists no files to check")
	}
	for _, f := range r.Files {
		st, err := os.Stat(f.Path)
		if err != nil {
			return fmt.Errorf("model file: %v", err)
		}
		if st.Size() != f.Size || st.ModTime().UnixNano() != f.ModTimeNS {
			return fmt.Errorf("model file %s changed since the parent hashed it", f.Path)
		}
	}
	return nil
}

// DatasetRef identifies the dataset the prompts came from.
type DatasetRef struct {
	Name    string `json:"name"`
	SHA256  string `json:"sha256"`
	Prompts int    `json:"prompts"` // in the whole sample, all ranks together
	// Records and SkippedRecords count the source's records; NonUTF8Prompts the sample's
	// prompts with bytes replaced by U+FFFD (results.Dataset has the same fields).
	Records        int `json:"records"`
	SkippedRecords int `json:"skipped_records"`
	NonUTF8Prompts int `json:"non_utf8_prompts"`
}

// WorkloadSpec is the work of the measured window.
type WorkloadSpec struct {
	BatchSize  int          `json:"batch_size"`
	Decoding   sdk.Decoding `json:"decoding"`
	Repeats    int          `json:"repeats"`
	MinWindowS float64      `json:"min_window_s"`
	// Load is this worker's share of a constant or poisson load; nil for static batches.
	Load *LoadSpec `json:"load,omitempty"`
}

// LoadSpec is one worker's open-loop load (workload.arrival = "constant" or "poisson",
// docs/serving.md): Requests requests per repeat at Rate requests/s (this worker's share of the
// experiment's), at most MaxConcurrency in flight, the schedule drawn from Seed.
type LoadSpec struct {
	Arrival        string  `json:"arrival"`
	Rate           float64 `json:"rate"`
	Requests       int     `json:"requests"`
	MaxConcurrency int     `json:"max_concurrency"`
	Seed           uint64  `json:"seed"`
}

// LifecycleSpec times the phases around the window.
type LifecycleSpec struct {
	BaselineS    float64 `json:"baseline_s"`
	WarmupMode   string  `json:"warmup_mode"` // "fixed" or "cv"
	WarmupBatch  int     `json:"warmup_batches"`
	CVThreshold  float64 `json:"cv_threshold"`
	CVWindow     int     `json:"cv_window"`
	MinBatches   int     `json:"min_batches"`
	MaxBatches   int     `json:"max_batches"`
	WarmupMaxS   float64 `json:"warmup_max_s"`
	ThermalWaitS float64 `json:"thermal_wait_s"`
	CooldownS    float64 `json:"cooldown_s"`
}

// EnergySpec configures metering.
type EnergySpec struct {
	IntervalNS int64 `json:"interval_ns"`
	// CarbonIntensity is energy.carbon_intensity_g_per_kwh and its source; nil when not set.
	CarbonIntensity *CarbonSpec `json:"carbon_intensity,omitempty"`
}

// CarbonSpec is the user's carbon intensity (g CO₂e per kWh) and where it comes from.
type CarbonSpec struct {
	GPerKWh float64 `json:"g_per_kwh"`
	Source  string  `json:"source,omitempty"`
}

// ValiditySpec holds the verdict's thresholds ([validity]).
type ValiditySpec struct {
	MinWindowS          float64 `json:"min_window_s"`
	MinCounterUpdates   int     `json:"min_counter_updates"`
	TemperatureDriftC   float64 `json:"temperature_drift_c"`
	IntegrationMismatch float64 `json:"integration_mismatch"`
	MaxThrottleShare    float64 `json:"max_throttle_share"`
	// MaxUncertainty: 0 (a spec without the key) means no limit.
	MaxUncertainty float64 `json:"max_uncertainty"`
	// MaxErrorRate is the share of failed requests above which an open-loop result is invalid.
	MaxErrorRate float64 `json:"max_error_rate,omitempty"`
}

// WriteSpec writes s to path (0600) atomically (host/atomicfile): a full disk fails the launch
// with ENOSPC and leaves no empty or torn spec behind.
func WriteSpec(path string, s *Spec) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, b, 0o600)
}

// ReadSpec reads a worker spec.
func ReadSpec(path string) (*Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read worker spec: %w", err)
	}
	var s Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("worker spec %s: %w", path, err)
	}
	return &s, nil
}

// HeartbeatPeriod is how often a worker of a run with this stall timeout reports its heartbeat:
// a quarter of the timeout, between 50 ms and 5 s; 0 when the watchdog is off.
func HeartbeatPeriod(stallTimeoutS float64) time.Duration {
	if stallTimeoutS <= 0 {
		return 0
	}
	return min(max(time.Duration(stallTimeoutS*float64(time.Second))/4, 50*time.Millisecond), 5*time.Second)
}

// CallTimeouts is launch.call_timeouts as the spec carries it.
type CallTimeouts struct {
	ControlS    float64 `json:"control_s"`
	RepositoryS float64 `json:"repository_s"`
	LoadS       float64 `json:"load_s"`
	GenerateS   float64 `json:"generate_s"`
}

// Client returns the deadlines as sdk/hostclient takes them.
func (t CallTimeouts) Client() hostclient.CallTimeouts {
	d := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	return hostclient.CallTimeouts{Control: d(t.ControlS), Repository: d(t.RepositoryS), Load: d(t.LoadS), Generate: d(t.GenerateS)}
}
