package results

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// SchemaVersion is the major version of the result schema. Keys are only added within a version.
const SchemaVersion = "1"

// Kinds of result documents.
const (
	KindRaw        = "raw"
	KindAggregated = "aggregated"
	KindManifest   = "manifest"
)

// Severities of findings (the same strings as the sdk's).
const (
	SeverityError   = "error"
	SeverityWarning = "warning"
	SeverityInfo    = "info"
)

// Raw is one worker's result: what one process measured on one device slot.
type Raw struct {
	SchemaVersion string          `json:"schema_version"`
	Kind          string          `json:"kind"`
	ExperimentID  string          `json:"experiment_id"`
	ConfigHash    string          `json:"config_hash"`
	Config        json.RawMessage `json:"config"`
	Provenance    Provenance      `json:"provenance"`
	Model         Model           `json:"model"`
	Engine        Engine          `json:"engine"`
	Dataset       Dataset         `json:"dataset"`

	Rank      int      `json:"rank"`
	WorldSize int      `json:"world_size"`
	Host      Host     `json:"host"`
	Device    Device   `json:"device"`
	Plugins   []Plugin `json:"plugins"`

	Window   RawWindow `json:"window"`
	Workload Workload  `json:"workload"`
	// Load describes a constant or poisson load (workload.arrival, docs/serving.md); nil for
	// static batches.
	Load       *Load      `json:"load,omitempty"`
	Requests   []Request  `json:"requests"`
	LatencyMS  Latency    `json:"latency_ms"`
	Throughput Throughput `json:"throughput"`
	Energy     Energy     `json:"energy"`
	Memory     Memory     `json:"memory"`
	FLOPs      FLOPs      `json:"flops"`
	Validity   Validity   `json:"validity"`
	Overhead   Overhead   `json:"overhead"`
	// Environment is the snapshot taken before the idle baseline.
	Environment Environment `json:"environment"`
	Repeats     []Repeat    `json:"repeats"`
	Warnings    []Warning   `json:"warnings"`
	// Slurm is the job step and task the worker ran as (launch.launcher = "slurm").
	Slurm *SlurmJob `json:"slurm,omitempty"`
	// Clock is how the worker's clocks stood around its window: what aggregation needs to
	// compare windows of different hosts (docs/slurm.md, "Clocks across hosts").
	Clock *Clock `json:"clock,omitempty"`

	CreatedUnixNS int64 `json:"created_unix_ns"`
}

// Clock is a worker's clock offset, unix = mono + offset (ns), sampled as its measured window
// starts and as it ends (their difference is how far the wall clock was slewed or stepped
// meanwhile), and the kernel's time synchronization state.
type Clock struct {
	MonoToUnixNS    int64     `json:"mono_to_unix_ns"`
	MonoToUnixEndNS int64     `json:"mono_to_unix_end_ns"`
	Sync            ClockSync `json:"sync"`
}

// ClockSync is the kernel's NTP state (adjtimex(2), as chronyd, ntpd or systemd-timesyncd keep
// it): whether the clock is synchronized and its maximum and estimated errors. Synchronized is
// nil, with Reason, when it could not be read.
type ClockSync struct {
	Source       string `json:"source"`
	Synchronized *bool  `json:"synchronized"`
	MaxErrorUS   *int64 `json:"max_error_us,omitempty"`
	EstErrorUS   *int64 `json:"est_error_us,omitempty"`
	Reason       string `json:"reason,omitempty"`
}

// Aggregated is the late aggregation of an experiment's raw results (host/aggregate).
type Aggregated struct {
	SchemaVersion string          `json:"schema_version"`
	Kind          string          `json:"kind"`
	ExperimentID  string          `json:"experiment_id"`
	ConfigHash    string          `json:"config_hash"`
	Config        json.RawMessage `json:"config"`
	Provenance    Provenance      `json:"provenance"`
	Model         Model           `json:"model"`
	Engine        Engine          `json:"engine"`
	Dataset       Dataset         `json:"dataset"`

	WorldSize      int      `json:"world_size"`
	Ranks          []int    `json:"ranks"`
	Partial        bool     `json:"partial"`
	PartialReasons []string `json:"partial_reasons"`
	Hosts          []Host   `json:"hosts"`
	Devices        []Slot   `json:"devices"`

	Window      Window            `json:"window"`
	Workload    Workload          `json:"workload"`
	Load        *Load             `json:"load,omitempty"`
	LatencyMS   Latency           `json:"latency_ms"`
	Throughput  Throughput        `json:"throughput"`
	Energy      Energy            `json:"energy"`
	Memory      Memory            `json:"memory"`
	FLOPs       FLOPs             `json:"flops"`
	Validity    Validity          `json:"validity"`
	Overhead    Overhead          `json:"overhead"`
	Environment AggEnvironment    `json:"environment"`
	Repeats     []Repeat          `json:"repeats"`
	RepeatStats map[string]*Stats `json:"repeat_stats"`
	Warnings    []Warning         `json:"warnings"`

	// Aggregation records how the aggregate was made (options, the aggregator's version).
	Aggregation AggregationInfo `json:"aggregation"`
	// CreatedUnixNS is the only field that differs when an aggregate is re-made from the same raw
	// results with the same lemctl.
	CreatedUnixNS int64 `json:"created_unix_ns"`
}

// AggregationInfo records how an aggregate was produced.
type AggregationInfo struct {
	LemctlVersion string `json:"lemctl_version"`
	LemctlCommit  string `json:"lemctl_commit"`
	Strict        bool   `json:"strict"`
	AllowMixed    bool   `json:"allow_mixed"`
	// RawSHA256 maps each aggregated rank (as a decimal string) to the sha256 of its raw bytes.
	RawSHA256 map[string]string `json:"raw_sha256"`
}

// Provenance says what produced a result.
type Provenance struct {
	LemctlVersion     string            `json:"lemctl_version"`
	LemctlCommit      string            `json:"lemctl_commit"`
	RuntimeVersions   map[string]string `json:"runtime_versions,omitempty"`
	ExecutionProvider string            `json:"execution_provider,omitempty"`
	// Overrides lists the config values set on the command line, with where they came from.
	Overrides []Override `json:"overrides,omitempty"`
}

// Override is one configuration value that did not come from defaults.
type Override struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Source string `json:"source"` // "file:LINE", "--set", "-n", …
}

// Model identifies the model measured.
type Model struct {
	Ref          string `json:"ref"`
	SHA256       string `json:"sha256"`
	Architecture string `json:"architecture"`
	Parameters   *int64 `json:"parameters"`
	Synthetic    bool   `json:"synthetic"`
}

// Engine identifies the engine plugin and how it ran.
type Engine struct {
	Plugin            string `json:"plugin"`
	Version           string `json:"version"`
	ExecutionProvider string `json:"execution_provider"`
	// Endpoint is the server an engine sends the work to (its base URL); Remote says that
	// server is another machine, whose work this machine's meters do not see; Served is what
	// the server reported about the model (finding energy_not_attributed).
	Endpoint string            `json:"endpoint,omitempty"`
	Remote   bool              `json:"remote,omitempty"`
	Served   map[string]string `json:"served,omitempty"`
}

// Dataset identifies the prompts.
type Dataset struct {
	Name    string `json:"name"`
	SHA256  string `json:"sha256"`
	Prompts int    `json:"prompts"`
	// Records counts the records read from the source, skipped ones included; SkippedRecords
	// those without a prompt (finding dataset_records_skipped).
	Records        int `json:"records"`
	SkippedRecords int `json:"skipped_records"`
	// NonUTF8Prompts counts the sample's prompts whose bytes were not valid UTF-8 and were
	// replaced by U+FFFD (finding non_utf8_replaced).
	NonUTF8Prompts int `json:"non_utf8_prompts"`
}

// Host identifies a machine boot: the same hostname after a reboot is another host, because
// monotonic clocks and counters restart.
type Host struct {
	Hostname string `json:"hostname"`
	BootID   string `json:"boot_id"`
}

// Key returns a string that identifies the host boot.
func (h Host) Key() string { return h.Hostname + "/" + h.BootID }

// Device is the device slot a worker ran on.
type Device struct {
	// Kind is "cpu", or "device" for an accelerator an energy plugin reported ("cuda" in
	// results written before devices were vendor-neutral).
	Kind  string `json:"kind"`
	Index int    `json:"index"` // the device's index in its meter's inventory; -1 for cpu
	UUID  string `json:"uuid"`  // the device id its meter reports (a GPU UUID, "acme0")
	Name  string `json:"name"`
	// Vendor and Meter: the device's vendor and the energy plugin that reported it.
	Vendor string `json:"vendor,omitempty"`
	Meter  string `json:"meter,omitempty"`
	// Env is the device's visibility environment as its meter gave it, which the launcher set;
	// SeenEnv is the same variables as the worker process itself saw them ("" when unset).
	Env     map[string]string `json:"env,omitempty"`
	SeenEnv map[string]string `json:"seen_env,omitempty"`
	// Slot is the launcher's slot id, unique per (host, device) within a run, e.g.
	// "acme:acme0:0" or "cpu:0".
	Slot string `json:"slot"`
}

// Slot is a device slot of an aggregate: which host and rank ran on it.
type Slot struct {
	Host   Host   `json:"host"`
	Device Device `json:"device"`
	Rank   int    `json:"rank"`
}

// Plugin is one plugin a worker used.
type Plugin struct {
	Name    string   `json:"name"`
	Version string   `json:"version"`
	Kinds   []string `json:"kinds"`
	SHA256  string   `json:"sha256"`
}

// Window is a span of time. In an aggregate it is min start → max end over the workers.
type Window struct {
	StartUnixNS int64   `json:"start_unix_ns"`
	EndUnixNS   int64   `json:"end_unix_ns"`
	DurationS   float64 `json:"duration_s"`
	// UnionS is the length of the union of the workers' windows (aggregates only); throughput is
	// output tokens ÷ UnionS.
	UnionS *float64 `json:"union_s,omitempty"`
}

// Span is a window on both clocks. Mono times are CLOCK_MONOTONIC ns of the worker's host.
type Span struct {
	StartUnixNS int64   `json:"start_unix_ns"`
	EndUnixNS   int64   `json:"end_unix_ns"`
	DurationS   float64 `json:"duration_s"`
	StartMonoNS int64   `json:"start_mono_ns"`
	EndMonoNS   int64   `json:"end_mono_ns"`
}

// RawWindow is a worker's measured window (the first repeat's start to the last repeat's end)
// with the spans of every lifecycle phase.
type RawWindow struct {
	Span
	// Phases maps a phase name (environment, idle_baseline, load, warmup, measured, cooldown, …)
	// to its span.
	Phases map[string]Span `json:"phases"`
}

// Workload counts the work done in the measured window (real tokens, never padding).
type Workload struct {
	Requests     int64 `json:"requests"`
	InputTokens  int64 `json:"input_tokens"`
	OutputTokens int64 `json:"output_tokens"`
	BatchSize    *int  `json:"batch_size"`
	Repeats      int   `json:"repeats"`
	// Passes counts how often the shard's batches ran to fill workload.min_window_s.
	Passes int `json:"passes,omitempty"`
	// TruncatedPrompts counts the distinct prompts the engine truncated to fit the model's
	// context (or workload.max_input_tokens); TruncatedTokens the tokens cut from them, once per
	// prompt (null when the loader could not count the prompts' tokens). Finding prompts_truncated.
	TruncatedPrompts int64  `json:"truncated_prompts"`
	TruncatedTokens  *int64 `json:"truncated_tokens"`
	// ContextExceededPrompts counts the distinct prompts that made the model process positions
	// past its context (input + output − 1 > context): the engine did not truncate them to fit.
	// Finding context_exceeded.
	ContextExceededPrompts int64 `json:"context_exceeded_prompts"`
}

// Request is one request's timing on the worker's monotonic clock.
type Request struct {
	ID           string  `json:"id"`
	Repeat       int     `json:"repeat"`
	InputTokens  int     `json:"input_tokens"`
	OutputTokens int     `json:"output_tokens"`
	StartMonoNS  int64   `json:"start_mono_ns"`
	TokenMonoNS  []int64 `json:"token_mono_ns"`
	// OutputIDs are the generated token ids, when the engine returned them (a served model's
	// server may return only text and a count): with greedy decoding they are the check that two
	// engines, or a served and an in-process run, computed the same thing.
	OutputIDs    []int32 `json:"output_ids,omitempty"`
	FinishReason string  `json:"finish_reason,omitempty"`
	// Truncated: the engine cut the prompt to fit (InputTokens are the tokens it kept).
	Truncated bool `json:"truncated,omitempty"`

	// The fields below are those of a constant or poisson load (docs/serving.md).
	// ScheduledMonoNS is the request's arrival time on the schedule, SendMonoNS when it was
	// handed to the engine (later when max_concurrency requests were in flight: SendLateNS is
	// the difference), DoneMonoNS when its result came back. TTFT and E2E count from the send.
	ScheduledMonoNS int64 `json:"scheduled_mono_ns,omitempty"`
	SendMonoNS      int64 `json:"send_mono_ns,omitempty"`
	SendLateNS      int64 `json:"send_late_ns,omitempty"`
	DoneMonoNS      int64 `json:"done_mono_ns,omitempty"`
	// ErrorKind and Error: the request failed (FinishReason "error"), e.g. "http_5xx".
	ErrorKind string `json:"error_kind,omitempty"`
	Error     string `json:"error,omitempty"`
	// TokenCount says how OutputTokens were counted: "engine" (the engine's own ids),
	// "server_ids", "usage" (the server's count) or "tokenizer" (the loader's, on the text).
	TokenCount string `json:"token_count,omitempty"`
	// ChunkMonoNS is the arrival of each streamed chunk (an engine reading a server's stream).
	ChunkMonoNS []int64 `json:"chunk_mono_ns,omitempty"`
	// MeanBatch is the mean running batch over the passes that produced the request's tokens.
	MeanBatch float64 `json:"mean_batch,omitempty"`
}

// Failed reports whether the request failed (its error kind is set or it finished on an error).
func (r Request) Failed() bool { return r.ErrorKind != "" || r.FinishReason == "error" }

// Load is how a constant or poisson load ran (docs/serving.md, "Results").
type Load struct {
	Arrival string `json:"arrival"`
	// Path is "serve" (the engine batched continuously) or "static_fallback" (the engine has no
	// Serve: the waiting requests ran as static batches of up to max_concurrency).
	Path string `json:"path"`
	// TargetRatePerS is the configured rate; AchievedRatePerS is (sends − 1) ÷ (last send −
	// first send), per repeat and averaged over the repeats weighted by their sends (null with
	// fewer than two sends); CompletedRatePerS is the requests completed ÷ the window.
	TargetRatePerS    float64  `json:"target_rate_per_s"`
	AchievedRatePerS  *float64 `json:"achieved_rate_per_s"`
	CompletedRatePerS *float64 `json:"completed_rate_per_s"`
	// MaxConcurrency is the bound (the target concurrency); MeanConcurrency the time-average of
	// the requests in flight (from send to done) over the window; PeakConcurrency the most at once.
	MaxConcurrency  int      `json:"max_concurrency"`
	MeanConcurrency *float64 `json:"mean_concurrency"`
	PeakConcurrency int      `json:"peak_concurrency"`
	// Sent counts the requests handed to the engine, Failed those that failed, by kind.
	Sent           int64            `json:"sent"`
	Failed         int64            `json:"failed"`
	FailureShare   *float64         `json:"failure_share"`
	FailuresByKind map[string]int64 `json:"failures_by_kind"`
	// LateSends counts the sends that left after their arrival time (max_concurrency in flight,
	// or the sender late); SendLateMS summarises the lateness of every send, in ms.
	LateSends  int64   `json:"late_sends"`
	SendLateMS Summary `json:"send_late_ms"`
	// TokenCount counts the requests by how their output tokens were counted.
	TokenCount map[string]int64 `json:"token_count"`
	// MeanBatch is the mean over the requests that report one of their running batch size.
	MeanBatch *float64 `json:"mean_batch"`
	// SteadyState is the part of the window at the target concurrency.
	SteadyState SteadyState `json:"steady_state"`
	// PerRank lists each worker's load (aggregates only).
	PerRank []RankLoad `json:"per_rank,omitempty"`
}

// FailureSummary says how many requests failed, with the share and the count of each kind:
// "12 of 40 requests failed (30.0 %): http_5xx 4, timeout 8".
func (l *Load) FailureSummary() string {
	kinds := make([]string, 0, len(l.FailuresByKind))
	for _, k := range slices.Sorted(maps.Keys(l.FailuresByKind)) {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, l.FailuresByKind[k]))
	}
	share := 0.0
	if l.Sent > 0 {
		share = float64(l.Failed) / float64(l.Sent) * 100
	}
	s := fmt.Sprintf("%d of %d requests failed (%.1f %%)", l.Failed, l.Sent, share)
	if len(kinds) > 0 {
		s += ": " + strings.Join(kinds, ", ")
	}
	return s
}

// SteadyState is the part of the window when max_concurrency requests were in flight
// (docs/serving.md, "Steady state"): in each repeat, from the first moment the in-flight count
// reached the target to the last moment it left it. Reached is false (with Reason) when it never did.
type SteadyState struct {
	Reached      bool     `json:"reached"`
	Reason       string   `json:"reason,omitempty"`
	DurationS    float64  `json:"duration_s"`
	AtTargetS    float64  `json:"at_target_s"`
	OutputTokens int64    `json:"output_tokens"`
	TokensPerS   *float64 `json:"output_tokens_per_s"`
	// EnergyJ is the counted domains' energy over the steady-state spans; null when no meter ran
	// or the energy is not attributed. JPerOutputToken divides it by OutputTokens.
	EnergyJ            *float64 `json:"energy_j"`
	EnergyUncertaintyJ *float64 `json:"energy_uncertainty_j,omitempty"`
	JPerOutputToken    *float64 `json:"j_per_output_token"`
	// Spans are the steady-state spans on the worker's monotonic clock (raw results).
	Spans []Span `json:"spans,omitempty"`
}

// RankLoad is one worker's load figures in an aggregate.
type RankLoad struct {
	Rank             int         `json:"rank"`
	TargetRatePerS   float64     `json:"target_rate_per_s"`
	AchievedRatePerS *float64    `json:"achieved_rate_per_s"`
	MeanConcurrency  *float64    `json:"mean_concurrency"`
	PeakConcurrency  int         `json:"peak_concurrency"`
	Sent             int64       `json:"sent"`
	Failed           int64       `json:"failed"`
	SteadyState      SteadyState `json:"steady_state"`
}

// Latency summarises time to first token, inter-token latency and end-to-end latency in ms.
type Latency struct {
	TTFT Summary `json:"ttft"`
	ITL  Summary `json:"itl"`
	E2E  Summary `json:"e2e"`
	// TimedBy says what the figures were timed from: "tokens" (each token's arrival), "chunks"
	// (a streamed chunk's arrival, when the engine gave no per-token times: an ITL is then the
	// gap between chunks, which may hold several tokens) or "tokens+chunks"; "" for a result
	// from before served loads (tokens).
	TimedBy string `json:"timed_by,omitempty"`
}

// Summary describes a sample. Everything but Count is null for an empty sample.
type Summary struct {
	Count int      `json:"count"`
	Mean  *float64 `json:"mean"`
	Min   *float64 `json:"min"`
	P50   *float64 `json:"p50"`
	P90   *float64 `json:"p90"`
	P95   *float64 `json:"p95"`
	P99   *float64 `json:"p99"`
	Max   *float64 `json:"max"`
}

// Throughput is work per second over a window (a worker's own, or the union of the workers').
type Throughput struct {
	Rates
	// PerWorker lists each rank's figures over its own window (aggregates only).
	PerWorker []WorkerThroughput `json:"per_worker,omitempty"`
}

// Rates are a workload's tokens and requests per second over a duration.
type Rates struct {
	OutputTokensPerS *float64 `json:"output_tokens_per_s"`
	RequestsPerS     *float64 `json:"requests_per_s"`
	TotalTokensPerS  *float64 `json:"total_tokens_per_s"`
}

// RatesOf is w's throughput over seconds; every figure is null when seconds is not positive.
func RatesOf(w Workload, seconds float64) Rates {
	return Rates{
		OutputTokensPerS: Ratio(float64(w.OutputTokens), seconds),
		RequestsPerS:     Ratio(float64(w.Requests), seconds),
		TotalTokensPerS:  Ratio(float64(w.InputTokens+w.OutputTokens), seconds),
	}
}

// WorkerThroughput is one rank's throughput over its own window.
type WorkerThroughput struct {
	Rank      int     `json:"rank"`
	DurationS float64 `json:"duration_s"`
	Rates
}

// Energy is the energy of a window, in joules, with its split and per-domain detail.
type Energy struct {
	// TotalJ sums the counted domains: per host, the widest set of measured domains that do not
	// overlap (host/energy.CountedSet); null when no domain that can count was measured.
	TotalJ                 *float64     `json:"total_j"`
	StaticJ                *float64     `json:"static_j"`
	DynamicJ               *float64     `json:"dynamic_j"`
	JPerOutputToken        *float64     `json:"j_per_output_token"`
	DynamicJPerOutputToken *float64     `json:"dynamic_j_per_output_token"`
	JPerRequest            *float64     `json:"j_per_request"`
	TokensPerJ             *float64     `json:"tokens_per_j"`
	Phases                 EnergyPhases `json:"phases"`
	// UncertaintyJ is the standard uncertainty of TotalJ (the counted domains' in quadrature,
	// docs/methodology.md "Uncertainty budget"); the other *Uncertainty* keys are those of the
	// figure they name. RelativeUncertainty is UncertaintyJ ÷ TotalJ, the figure
	// validity.max_uncertainty bounds.
	UncertaintyJ                      *float64 `json:"uncertainty_j"`
	RelativeUncertainty               *float64 `json:"relative_uncertainty"`
	StaticUncertaintyJ                *float64 `json:"static_uncertainty_j"`
	DynamicUncertaintyJ               *float64 `json:"dynamic_uncertainty_j"`
	JPerOutputTokenUncertainty        *float64 `json:"j_per_output_token_uncertainty"`
	DynamicJPerOutputTokenUncertainty *float64 `json:"dynamic_j_per_output_token_uncertainty"`
	JPerRequestUncertainty            *float64 `json:"j_per_request_uncertainty"`
	TokensPerJUncertainty             *float64 `json:"tokens_per_j_uncertainty"`
	Domains                           []Domain `json:"domains"`
	CountedDomainKinds                []string `json:"counted_domain_kinds,omitempty"`
	UnavailableDomainsCount           int      `json:"unavailable_domains,omitempty"`

	// CountedDomains names the domains TotalJ sums (an aggregate over several hosts writes
	// "hostname/id").
	CountedDomains []string `json:"counted_domains,omitempty"`

	// NotAttributed says why the energy per token, per request and tokens per joule are not
	// given (null): the model ran on another machine, which this machine's meters do not see
	// (finding energy_not_attributed). TotalJ is still this machine's energy over the window.
	NotAttributed string `json:"not_attributed,omitempty"`

	// Estimated is true when TotalJ counts only estimated domains (method estimate: no energy
	// counter measured this host); an estimate is never added to a measured total.
	Estimated bool `json:"estimated,omitempty"`
	// CO2e is the carbon footprint from the user's carbon intensity; nil when none was configured
	// or no energy was measured (lemctl never assumes an intensity).
	CO2e *CO2e `json:"co2e,omitempty"`
}

// NotAttribute clears the figures that divide this machine's energy by the work of a model that
// ran on another one (per output token, per request, tokens per joule, CO₂e per request and per
// token), and records why in NotAttributed.
func (e *Energy) NotAttribute(reason string) {
	e.NotAttributed = reason
	e.JPerOutputToken, e.JPerOutputTokenUncertainty = nil, nil
	e.DynamicJPerOutputToken, e.DynamicJPerOutputTokenUncertainty = nil, nil
	e.JPerRequest, e.JPerRequestUncertainty = nil, nil
	e.TokensPerJ, e.TokensPerJUncertainty = nil, nil
	if e.CO2e != nil {
		e.CO2e.GPerRequest, e.CO2e.GPerOutputToken = nil, nil
	}
}

// CO2e is TotalJ converted with the user's grid carbon intensity: g = J ÷ 3.6e6 × g/kWh.
type CO2e struct {
	G               *float64 `json:"g"`
	GPerRequest     *float64 `json:"g_per_request"`
	GPerOutputToken *float64 `json:"g_per_output_token"`
	// IntensityGPerKWh and Source are the figure used and where the user says it comes from.
	IntensityGPerKWh float64 `json:"intensity_g_per_kwh"`
	Source           string  `json:"source"`
}

// EnergyPhases splits energy between prefill and decode, each with its standard uncertainty.
type EnergyPhases struct {
	PrefillJ            *float64 `json:"prefill_j"`
	DecodeJ             *float64 `json:"decode_j"`
	PrefillUncertaintyJ *float64 `json:"prefill_uncertainty_j"`
	DecodeUncertaintyJ  *float64 `json:"decode_uncertainty_j"`
	// Batches counts the batches split; Interpolated those whose first token fell between two
	// counter updates, so that the split was interpolated and its uncertainty widened.
	Batches      int `json:"batches,omitempty"`
	Interpolated int `json:"interpolated,omitempty"`
	// NotAttributed says why prefill and decode are not split (null), e.g. under continuous
	// batching, where one forward pass prefills some requests and decodes others.
	NotAttributed string `json:"not_attributed,omitempty"`
}

// Domain is one energy domain (a GPU, a RAPL zone, …).
type Domain struct {
	ID         string `json:"id"`
	Name       string `json:"name,omitempty"`
	Kind       string `json:"kind"`
	Scope      string `json:"scope"`
	Method     string `json:"method"`
	Confidence string `json:"confidence"`
	Available  bool   `json:"available"`
	Reason     string `json:"reason"`
	Plugin     string `json:"plugin,omitempty"`
	// DeviceUUID is the id of the device a device-scoped domain measures, as its meter names it
	// (a GPU UUID for nvidia, "acme0"…); the JSON name predates vendor-neutral devices.
	DeviceUUID   string `json:"device_uuid,omitempty"`
	DeviceVendor string `json:"device_vendor,omitempty"`
	// DeviceIndex is the device's index in its meter's inventory.
	DeviceIndex *int `json:"device_index,omitempty"`

	TotalJ      *float64     `json:"total_j"`
	IdlePowerW  *float64     `json:"idle_power_w"`
	StaticJ     *float64     `json:"static_j"`
	DynamicJ    *float64     `json:"dynamic_j"`
	ResolutionJ *float64     `json:"resolution_j"`
	UpdatePerS  *float64     `json:"update_period_s,omitempty"`
	Phases      EnergyPhases `json:"phases"`
	Health      []Finding    `json:"health"`
	// Counted is true when the domain's energy is in Energy.TotalJ; NotCounted says why a
	// measured domain is not (nested, inside a node domain, …).
	Counted    bool   `json:"counted,omitempty"`
	NotCounted string `json:"not_counted,omitempty"`
	// CounterUpdates is how often the counter changed in the window (raw results).
	CounterUpdates *int `json:"counter_updates,omitempty"`
	// EdgeGapS is the larger distance, in seconds, between a window edge and the nearest
	// sample the energy was interpolated from (docs/methodology.md, window edges; raw results).
	EdgeGapS *float64 `json:"edge_gap_s,omitempty"`
	// QuantisationJ is the counter's quantisation error over the window: one update period ×
	// mean power at each edge (docs/methodology.md, resolution; raw results).
	QuantisationJ *float64 `json:"quantisation_j,omitempty"`
	// UncertaintyJ is the standard uncertainty of TotalJ, UncertaintyMethod how it was obtained
	// and UncertaintyTerms its terms (docs/methodology.md "Uncertainty budget").
	UncertaintyJ      *float64          `json:"uncertainty_j"`
	UncertaintyMethod string            `json:"uncertainty_method,omitempty"`
	UncertaintyTerms  *UncertaintyTerms `json:"uncertainty_terms,omitempty"`
	// StaticUncertaintyJ and DynamicUncertaintyJ are those of StaticJ and DynamicJ.
	StaticUncertaintyJ  *float64 `json:"static_uncertainty_j,omitempty"`
	DynamicUncertaintyJ *float64 `json:"dynamic_uncertainty_j,omitempty"`

	// Timeline is the domain's cumulative curve (raw results only, inline): it must cover the
	// worker's window and be non-decreasing in both time and energy.
	Timeline []Sample `json:"timeline,omitempty"`

	// Host and Ranks say, in an aggregate, which host the domain is on and which ranks saw it.
	Host  *Host `json:"host,omitempty"`
	Ranks []int `json:"ranks,omitempty"`
	// Stitched is true in an aggregate when the energy was stitched from several workers'
	// cumulative curves over the union of their windows.
	Stitched bool `json:"stitched,omitempty"`
}

// UncertaintyTerms are the terms of a domain's uncertainty budget, each a standard uncertainty
// in joules; the domain's UncertaintyJ is their quadrature sum (docs/methodology.md).
type UncertaintyTerms struct {
	QuantisationJ float64 `json:"quantisation_j"`
	EdgeGapJ      float64 `json:"edge_gap_j"`
	UpdateJ       float64 `json:"update_j"`
	CoverageJ     float64 `json:"coverage_j"`
	// Coverage is the share of the window the samples represent (1 for a counter).
	Coverage float64 `json:"coverage"`
}

// Sample is one point of a domain's timeline: cumulative energy since the worker's first sample,
// corrected for wraps and resets by the meter. Absent readings are null.
type Sample struct {
	MonoNS       int64    `json:"mono_ns"`
	EnergyUJ     uint64   `json:"energy_uj"`
	PowerW       *float64 `json:"power_w,omitempty"`
	TemperatureC *float64 `json:"temperature_c,omitempty"`
	// SMClockMHz and MemoryClockMHz are the device's clocks, where the meter reads them (nvml).
	SMClockMHz     *float64 `json:"sm_clock_mhz,omitempty"`
	MemoryClockMHz *float64 `json:"memory_clock_mhz,omitempty"`
	// ClockEventReasons are the clock-event reason bits read at this sample (sdk.ClockEvent*,
	// NVML's layout); absent where not read.
	ClockEventReasons *uint64 `json:"clock_event_reasons,omitempty"`
}

// Memory is the peak and model memory of a device (raw) or of all devices (aggregated: the max
// per device, summed over devices).
type Memory struct {
	PeakBytes  *int64         `json:"peak_bytes"`
	ModelBytes *int64         `json:"model_bytes"`
	Devices    []DeviceMemory `json:"devices,omitempty"`
}

// DeviceMemory is one device's memory in an aggregate.
type DeviceMemory struct {
	Host       Host   `json:"host"`
	Device     string `json:"device"`
	PeakBytes  *int64 `json:"peak_bytes"`
	ModelBytes *int64 `json:"model_bytes"`
}

// FLOPs is the arithmetic done (2 per multiply-add).
type FLOPs struct {
	Total          *float64 `json:"total"`
	PerOutputToken *float64 `json:"per_output_token"`
	Method         string   `json:"method"`
}

// Validity is the verdict: valid unless some finding has severity "error".
type Validity struct {
	Valid    bool      `json:"valid"`
	Findings []Finding `json:"findings"`
}

// ValidityOf is the verdict on findings and on the health of domains: invalid when any of them
// has severity "error". Findings is never nil in the result (it encodes as []).
func ValidityOf(findings []Finding, domains []Domain) Validity {
	v := Validity{Valid: true, Findings: findings}
	if v.Findings == nil {
		v.Findings = []Finding{}
	}
	for _, f := range findings {
		v.Valid = v.Valid && f.Severity != SeverityError
	}
	for _, d := range domains {
		for _, h := range d.Health {
			v.Valid = v.Valid && h.Severity != SeverityError
		}
	}
	return v
}

// Finding is a validity or health observation with a stable code (docs/methodology.md, "Validity").
type Finding struct {
	Code     string `json:"code"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
	Advice   string `json:"advice,omitempty"`
	Domain   string `json:"domain,omitempty"`
	// Rank is the worker the finding came from; null for a finding about the whole experiment.
	Rank *int `json:"rank"`
}

// Warning is a free-text warning tagged with the rank it came from (null: the aggregation).
type Warning struct {
	Message string `json:"message"`
	Rank    *int   `json:"rank"`
}

// Overhead is what measuring cost: CPU time of the meter plugins during the window.
type Overhead struct {
	MeterCPUS *float64 `json:"meter_cpu_s"`
	Share     *float64 `json:"share"`
}

// Environment is a worker's environment snapshot.
type Environment struct {
	// Facts are host-level facts: cpu_model, governor, cgroup_cpu_quota, virtualization, …
	Facts map[string]string `json:"facts"`
	// Devices are per-device facts, as the energy plugins report them.
	Devices []DeviceEnvironment `json:"devices"`
}

// DeviceEnvironment holds facts about one device or domain.
type DeviceEnvironment struct {
	ID    string            `json:"id"`
	Facts map[string]string `json:"facts"`
}

// AggEnvironment groups the workers' environments by host.
type AggEnvironment struct {
	Hosts []HostEnvironment `json:"hosts"`
}

// HostEnvironment is one host's environment in an aggregate: the lowest rank's facts and the
// union of device facts by id.
type HostEnvironment struct {
	Host    Host                `json:"host"`
	Ranks   []int               `json:"ranks"`
	Facts   map[string]string   `json:"facts"`
	Devices []DeviceEnvironment `json:"devices"`
}

// Repeat is the figures of one repeat of the measured window.
type Repeat struct {
	Index int `json:"index"`
	// Window is the repeat's span (raw results). An aggregate gives start/end over the
	// workers and duration_s = the union of their repeat windows.
	Window           Span     `json:"window"`
	Requests         int64    `json:"requests"`
	InputTokens      int64    `json:"input_tokens"`
	OutputTokens     int64    `json:"output_tokens"`
	OutputTokensPerS *float64 `json:"output_tokens_per_s"`
	EnergyJ          *float64 `json:"energy_j"`
	// EnergyUncertaintyJ is the standard uncertainty of EnergyJ (the counted domains'
	// within-window budgets in quadrature).
	EnergyUncertaintyJ *float64 `json:"energy_uncertainty_j,omitempty"`
	JPerOutputToken    *float64 `json:"j_per_output_token"`
	TTFTP50MS          *float64 `json:"ttft_p50_ms"`
	ITLP50MS           *float64 `json:"itl_p50_ms"`
}

// Stats summarises a figure over repeats: mean, sample standard deviation, the 95 % confidence
// interval of the mean (Student t, n−1 degrees of freedom) and the coefficient of variation.
// Std, the interval and CV are null with fewer than two values; CV is null when the mean is 0.
type Stats struct {
	N        int       `json:"n"`
	Mean     *float64  `json:"mean"`
	Std      *float64  `json:"std"`
	CI95Low  *float64  `json:"ci95_low"`
	CI95High *float64  `json:"ci95_high"`
	CI95Half *float64  `json:"ci95_half_width"`
	CV       *float64  `json:"cv"`
	Values   []float64 `json:"values"`
	// WithinU is the root mean square of the repeats' own (within-window) standard
	// uncertainties, for figures that have one; CombinedU = √(Std²/N + WithinU²) the standard
	// uncertainty of the mean with both, and Combined95Low/High the mean ∓ 2 × CombinedU.
	WithinU        *float64 `json:"within_u,omitempty"`
	CombinedU      *float64 `json:"combined_u,omitempty"`
	Combined95Low  *float64 `json:"combined95_low,omitempty"`
	Combined95High *float64 `json:"combined95_high,omitempty"`
}

// Run states of a manifest.
const (
	StateRunning     = "running"
	StateCompleted   = "completed"
	StateFailed      = "failed"
	StateInterrupted = "interrupted"
	// StateAbandoned is never stored: it is how a manifest still "running" is shown when the
	// lemctl that wrote it is gone (killed, or the host rebooted) — see Manifest.ShownState.
	StateAbandoned = "abandoned"
)

// Manifest records a run as the launcher sees it, before and after its workers.
type Manifest struct {
	SchemaVersion string         `json:"schema_version"`
	Kind          string         `json:"kind"`
	ExperimentID  string         `json:"experiment_id"`
	ConfigHash    string         `json:"config_hash"`
	State         string         `json:"state"`
	WorldSize     int            `json:"world_size"`
	Ranks         []ManifestRank `json:"ranks"`
	StartUnixNS   int64          `json:"start_unix_ns"`
	EndUnixNS     *int64         `json:"end_unix_ns"`
	Error         string         `json:"error,omitempty"`
	LemctlVersion string         `json:"lemctl_version"`
	// LemctlPID, LemctlStartTicks and LemctlHost identify the lemctl process that runs the
	// experiment (its pid, its start in clock ticks after boot, the host and boot), so that a
	// reader can tell a running experiment from one whose lemctl died (ShownState).
	LemctlPID        int    `json:"lemctl_pid,omitempty"`
	LemctlStartTicks uint64 `json:"lemctl_start_ticks,omitempty"`
	LemctlHost       *Host  `json:"lemctl_host,omitempty"`
	// Findings are what the orchestrator found about the whole experiment before the workers ran
	// (such as CodeMeterRefused); aggregation carries them into the aggregate's validity.
	Findings []Finding `json:"findings,omitempty"`
	// Slurm is the allocation and step the workers ran in (launch.launcher = "slurm").
	Slurm *SlurmJob `json:"slurm,omitempty"`
}

// SlurmJob identifies a Slurm job step and, in a raw result, the task within it.
type SlurmJob struct {
	JobID  string `json:"job_id"`
	StepID string `json:"step_id,omitempty"`
	// Task fields (raw results): SLURM_PROCID, SLURM_LOCALID and SLURMD_NODENAME.
	ProcID  *int   `json:"proc_id,omitempty"`
	LocalID *int   `json:"local_id,omitempty"`
	Node    string `json:"node,omitempty"`
}

// ShownState is the state to show for the manifest: its stored state, except that a "running"
// manifest whose lemctl is gone is StateAbandoned. here is the host and boot of the reader;
// running tells whether a pid that started at the given ticks is alive on it. A lemctl on another
// host cannot be checked and shows as running; on this host, a different boot id means the
// machine rebooted since, so the run is abandoned.
func (m *Manifest) ShownState(here Host, running func(pid int, startTicks uint64) bool) string {
	if m.State != StateRunning || m.LemctlPID <= 0 || m.LemctlHost == nil {
		return m.State
	}
	if m.LemctlHost.Hostname != here.Hostname {
		return m.State
	}
	if m.LemctlHost.BootID != here.BootID || !running(m.LemctlPID, m.LemctlStartTicks) {
		return StateAbandoned
	}
	return m.State
}

// CodeMeterRefused is the warning for an energy plugin that `meters = "auto"` left out because
// it is installed but unusable (refused by its lock, crashed, hung, failed its Inventory).
const CodeMeterRefused = "meter_refused"

// ManifestRank is one worker of a run.
type ManifestRank struct {
	Rank     int    `json:"rank"`
	Host     Host   `json:"host"`
	Device   Device `json:"device"`
	PID      int    `json:"pid,omitempty"`
	LogPath  string `json:"log_path"`
	State    string `json:"state"`
	ExitCode *int   `json:"exit_code"`
}
