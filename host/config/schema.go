package config

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/lemctl/lemctl/host/echo"
	"github.com/lemctl/lemctl/sdk"
)

// kind is the TOML type a key accepts.
type kind int

const (
	kString kind = iota
	kInt
	kFloat
	kBool
	kDuration // a Go duration string ("100ms"); "" allowed where noted
	kDevices  // "cpu" or a list of device ids / inventory indices
	kMeters   // "auto" or a list of plugin names
)

// keySpec describes one key of the schema. The schema is the single source of the defaults, the
// ranges, the validation and docs/config.md (a test checks that every key is documented).
type keySpec struct {
	path []string
	kind kind
	def  any // canonical default (string, int64, float64, bool, []any); nil: no default
	// defDoc describes the default when it is not a literal (e.g. "the file name").
	defDoc   string
	required bool
	enum     []string
	min, max *float64
	minOpen  bool // the range excludes min
	// allowEmpty lets a string or duration key be "".
	allowEmpty bool
	// validText, when set, replaces the generated description of the valid values.
	validText string
	// pattern, when set, must match a string value; patternDoc describes it.
	pattern    *regexp.Regexp
	patternDoc string
	doc        string
}

var (
	namePattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	pluginPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
)

const pluginPatternDoc = "a plugin name: lowercase letters, digits, '_' and '-' (the binary is lem-plugin-<name>)"

// schema lists every host key. Sections with plugin tables ([model], [engine], [repository],
// [energy.<meter>]) pass every other key to the plugin.
var schema = []keySpec{
	{path: p("name"), kind: kString, defDoc: "the config file's name without its extension (\"quickstart\" for the embedded default)", pattern: namePattern,
		patternDoc: "1–64 letters, digits, '.', '_' or '-', starting with a letter or digit",
		doc:        "Name of the experiment; it prefixes the experiment id and is part of the config hash."},

	{path: p("model", "plugin"), kind: kString, def: "onnx", pattern: pluginPattern, patternDoc: pluginPatternDoc,
		doc: "Loader plugin that resolves model.ref. Every other key of [model] is the loader's own table, passed to its Configure."},
	{path: p("model", "ref"), kind: kString, required: true,
		validText: "a model directory, a model file, or synthetic:<preset> (e.g. \"synthetic:gpt2-124m\"); the loader plugin says which it resolves",
		doc:       "Model reference the loader resolves: a directory, a file, or synthetic:<preset> (e.g. synthetic:gpt2-124m)."},

	{path: p("model", "precision"), kind: kString, def: "auto", enum: []string{"auto", "fp32", "int8", "int4"},
		doc: "Weight precision. auto: as the model stores it. For a synthetic:<preset> reference, int8 and int4 select the quantised preset (the same as the -q8 or -q4 suffix; a suffix that names another precision is an error) and fp32 the unsuffixed one; for a model directory, the precision the loader reports must match (checked when `lemctl run` resolves the model; exit 2 naming both)."},

	{path: p("engine", "plugin"), kind: kString, def: "onnx", pattern: pluginPattern, patternDoc: pluginPatternDoc,
		doc: "Engine plugin that runs the model. Every other key of [engine] is the engine's own table, passed to its Configure."},

	{path: p("workload", "dataset"), kind: kString, def: "builtin",
		validText: "\"builtin\", \"synthetic:<input_tokens>\" (1 to 1048576), or the path of a readable .jsonl, .ndjson, .json or .txt file (another extension needs workload.format)",
		doc:       "Prompts: \"builtin\" (the prompt set shipped in lemctl), \"synthetic:<input_tokens>\" (prompts of exactly that many tokens, built with the loader's tokenizer; needs workload.prompts), or a file path (JSONL, Alpaca JSON, ShareGPT JSON or text), relative to the current directory. `lemctl datasets` lists them."},
	{path: p("workload", "format"), kind: kString, def: "auto", enum: []string{"auto", "jsonl", "alpaca", "sharegpt", "text"},
		doc: "Format of a dataset file. auto: .jsonl/.ndjson → jsonl, .txt → text, .json → sharegpt when the records have `conversations`, else alpaca."},
	{path: p("workload", "column"), kind: kString, def: "", allowEmpty: true,
		doc: "Field holding the prompt in JSONL or Alpaca records. Empty: `prompt`, else `text`, else `instruction` + `input`."},
	{path: p("workload", "prompts"), kind: kInt, def: int64(0), min: sdk.Bound(0), max: sdk.Bound(10_000_000),
		doc: "Number of prompts measured, over all workers together. 0: every prompt of the dataset (a synthetic dataset needs a count). Asking for more prompts than the dataset has is an error."},
	{path: p("workload", "seed"), kind: kInt, def: int64(0), min: sdk.Bound(0), max: sdk.Bound(math.MaxInt64),
		doc: "Seed of the prompt sample (order = \"shuffle\") and of sampled decoding. The same seed gives the same prompts in the same order."},
	{path: p("workload", "order"), kind: kString, def: "sequential", enum: []string{"sequential", "shuffle"},
		doc: "sequential: the first `prompts` records in file order; shuffle: a seeded random sample of `prompts` records in random order."},
	{path: p("workload", "batch_size"), kind: kInt, def: int64(8), min: sdk.Bound(1), max: sdk.Bound(65536),
		doc: "Requests per static batch. Energy per token moves several-fold with batch size, so every result shows it."},
	{path: p("workload", "max_input_tokens"), kind: kInt, def: int64(0), min: sdk.Bound(0), max: sdk.Bound(1 << 20),
		doc: "Longer prompts are truncated from the left to this many tokens (counted: finding prompts_truncated). 0: the model's context length minus max_new_tokens."},
	{path: p("workload", "max_new_tokens"), kind: kInt, def: int64(128), min: sdk.Bound(1), max: sdk.Bound(1 << 20),
		doc: "Tokens generated per request (exactly this many when decoding.ignore_eos). Must be below the model's context when the loader reports one (`lemctl run` exits 2 otherwise); prompts the engine truncates to fit are counted (finding prompts_truncated)."},
	{path: p("workload", "repeats"), kind: kInt, def: int64(1), min: sdk.Bound(1), max: sdk.Bound(1000),
		doc: "Measured windows over the same prompts; the result gives each repeat and their mean, sample std, 95 % CI and CV."},
	{path: p("workload", "min_window_s"), kind: kFloat, def: 10.0, min: sdk.Bound(0), max: sdk.Bound(86400),
		doc: "The measured window repeats the worker's batches (each pass counted) until it has lasted at least this many seconds, so short workloads still give a valid window. 0: one pass. Only with arrival = \"batch\": a constant or poisson load lasts for workload.requests or workload.duration_s."},
	{path: p("workload", "arrival"), kind: kString, def: "batch", enum: []string{"batch", "constant", "poisson"},
		doc: "How requests arrive in the measured window. batch: static batches of batch_size, back to back (the engine's Generate). constant: one request every 1/rate seconds; poisson: a seeded Poisson process at rate requests/s (workload.seed); both send each request at its arrival time to an engine that batches continuously (its Serve; an engine without it runs the waiting requests as static batches of up to max_concurrency, finding serve_fallback) with at most max_concurrency requests in flight, an arrival that finds them all busy waiting (its lateness is recorded). docs/serving.md."},
	{path: p("workload", "rate"), kind: kFloat, defDoc: "none: required with arrival = \"constant\" or \"poisson\"", min: sdk.Bound(0), minOpen: true, max: sdk.Bound(1_000_000),
		doc: "Target arrival rate in requests per second over all workers together (each worker sends rate ÷ workers). Only with arrival = \"constant\" or \"poisson\"."},
	{path: p("workload", "max_concurrency"), kind: kInt, def: int64(8), min: sdk.Bound(1), max: sdk.Bound(65536),
		doc: "Most requests in flight at once per worker (constant and poisson arrivals). It is also the target concurrency of the steady-state window and the batch size of the warm-up."},
	{path: p("workload", "requests"), kind: kInt, def: int64(0), min: sdk.Bound(0), max: sdk.Bound(10_000_000),
		doc: "Requests sent per repeat over all workers together (constant and poisson arrivals); the prompts of the sample are used in turn, cycling when there are fewer. 0: one per prompt of the sample, unless duration_s is set. Not together with duration_s."},
	{path: p("workload", "duration_s"), kind: kFloat, def: 0.0, min: sdk.Bound(0), max: sdk.Bound(86400),
		doc: "Length of the arrival schedule in seconds (constant and poisson arrivals): round(rate × duration_s) requests (at least one) are sent, the last at about duration_s; the window then waits for those in flight. 0: use workload.requests. Not together with requests."},

	{path: p("workload", "decoding", "greedy"), kind: kBool, def: true,
		doc: "Argmax decoding. false: sample with temperature, top_k, top_p and workload.seed."},
	{path: p("workload", "decoding", "temperature"), kind: kFloat, def: 1.0, min: sdk.Bound(0), minOpen: true, max: sdk.Bound(100),
		doc: "Sampling temperature (greedy = false only)."},
	{path: p("workload", "decoding", "top_k"), kind: kInt, def: int64(0), min: sdk.Bound(0), max: sdk.Bound(1 << 20),
		doc: "Sample from the k most likely tokens; 0 disables (greedy = false only)."},
	{path: p("workload", "decoding", "top_p"), kind: kFloat, def: 1.0, min: sdk.Bound(0), minOpen: true, max: sdk.Bound(1),
		doc: "Nucleus sampling mass; 1 disables (greedy = false only)."},
	{path: p("workload", "decoding", "ignore_eos"), kind: kBool, def: true,
		doc: "Generate exactly max_new_tokens for every request, even past an end-of-sequence token, so runs of different models do the same work. false: stop at EOS (counted once)."},

	{path: p("launch", "devices"), kind: kDevices, def: "cpu",
		doc: "Where workers run: \"cpu\", or a list of accelerators that an energy plugin of [energy].meters reports in its inventory, each by its device id (\"GPU-…\", \"acme0\") or by its index in that plugin's inventory (0, 1, …). Each worker gets exactly the environment the plugin gives for its device (e.g. CUDA_VISIBLE_DEVICES=<uuid>), so that it sees only that device. processes_per_device workers are started per entry."},
	{path: p("launch", "processes_per_device"), kind: kInt, def: int64(1), min: sdk.Bound(1), max: sdk.Bound(1024),
		doc: "Workers per device entry (for \"cpu\": the number of CPU workers)."},
	{path: p("launch", "threads"), kind: kInt, def: int64(0), min: sdk.Bound(0), max: sdk.Bound(4096),
		doc: "Intra-op threads per worker. 0: the host's usable cores (cgroup quota and affinity respected) divided evenly among the CPU workers on that host."},
	{path: p("launch", "pin_cpus"), kind: kBool, def: false,
		doc: "Pin each worker to its own disjoint set of cores."},
	{path: p("launch", "stall_timeout_s"), kind: kFloat, def: 300.0, min: sdk.Bound(0), max: sdk.Bound(86400),
		doc: "The watchdog: a worker that stays in the same plugin call with no progress for this many seconds (or sends no heartbeat at all for as long) is killed, named with its phase and the call it is in, and the run fails (exit 1). A call that streams results (engine.Generate) makes progress with each one; a single call that takes longer than this with nothing streamed (a very large model's engine.Load) needs a larger value. Not part of the config hash. 0: off. See docs/reliability.md."},

	{path: p("launch", "call_timeouts", "control_s"), kind: kFloat, def: 30.0, min: sdk.Bound(0), max: sdk.Bound(86400),
		doc: "Deadline in seconds for one control call to a plugin: Configure, every energy-meter call (Inventory, Environment, Start, Mark, Stop) and the engine's Unload. On expiry the run fails (exit 1) naming the plugin, the call and the deadline. Not part of the config hash. 0: no deadline of its own (the watchdog, stall_timeout_s, still applies). See docs/reliability.md."},
	{path: p("launch", "call_timeouts", "repository_s"), kind: kFloat, def: 60.0, min: sdk.Bound(0), max: sdk.Bound(86400),
		doc: "Deadline in seconds for one repository call (save or load a result, a marker, a manifest). Not part of the config hash. 0: none."},
	{path: p("launch", "call_timeouts", "load_s"), kind: kFloat, def: 600.0, min: sdk.Bound(0), max: sdk.Bound(86400),
		doc: "Deadline in seconds for the engine's Load (reading a model onto its device). Not part of the config hash. 0: none."},
	{path: p("launch", "call_timeouts", "generate_s"), kind: kFloat, def: 0.0, min: sdk.Bound(0), max: sdk.Bound(86400),
		doc: "Deadline in seconds for one engine Generate or Warmup call (one batch). 0 (the default): none of its own, since a batch's length depends on the model; the watchdog (stall_timeout_s) covers a batch that streams nothing. Not part of the config hash."},
	{path: p("launch", "launcher"), kind: kString, def: "local", enum: []string{"local", "slurm"},
		doc: "How the workers are started. local: subprocesses of `lemctl run` on this host. slurm: one `srun` task per device slot inside the current Slurm allocation ($SLURM_JOB_ID), the workers connecting back to `lemctl run` over TCP (docs/slurm.md). Not part of the config hash."},
	{path: p("launch", "slurm", "submit"), kind: kBool, def: false,
		doc: "launcher = \"slurm\" outside an allocation: false (default) stops with the `salloc`/`sbatch` command to run; true submits this same `lemctl run` with `sbatch` and prints the job id (follow it with `lemctl run --attach JOBID`). Not part of the config hash."},
	{path: p("launch", "slurm", "port"), kind: kInt, def: int64(0), min: sdk.Bound(0), max: sdk.Bound(65535),
		doc: "TCP port the coordinator of a Slurm run listens on, on the node that runs `lemctl run`; 0: any free port. Not part of the config hash."},

	{path: p("lifecycle", "baseline_s"), kind: kFloat, def: 30.0, min: sdk.Bound(0), max: sdk.Bound(3600),
		doc: "Idle baseline before the model loads, measured on every meter, to split static from dynamic energy. 0 disables it (the result then carries baseline_missing)."},
	{path: p("lifecycle", "thermal_wait_s"), kind: kFloat, def: 0.0, min: sdk.Bound(0), max: sdk.Bound(3600),
		doc: "A fixed pause after warm-up, before the measured window, with the meters off (so devices can cool back after warm-up); a plain sleep, not a temperature-controlled settle. 0: no pause."},
	{path: p("lifecycle", "cooldown_s"), kind: kFloat, def: 0.0, min: sdk.Bound(0), max: sdk.Bound(3600),
		doc: "A fixed pause once after the last repeat, with the meters already stopped; it changes no figure."},
	{path: p("lifecycle", "warmup", "mode"), kind: kString, def: "cv", enum: []string{"fixed", "cv"},
		doc: "fixed: run `batches` warmup batches. cv: run batches until the coefficient of variation of the last `window` batch latencies is below cv_threshold, at least min_batches and at most max_batches and max_s (a warmup_not_converged warning, with the CV reached and the bound that stopped it, when a bound comes first)."},
	{path: p("lifecycle", "warmup", "batches"), kind: kInt, def: int64(3), min: sdk.Bound(0), max: sdk.Bound(10000),
		doc: "Warmup batches in fixed mode; 0 disables warmup."},
	{path: p("lifecycle", "warmup", "cv_threshold"), kind: kFloat, def: 0.05, min: sdk.Bound(0), minOpen: true, max: sdk.Bound(1),
		doc: "cv mode: stop once the latency CV (sample std ÷ mean) of the last `window` batches is below this."},
	{path: p("lifecycle", "warmup", "min_batches"), kind: kInt, def: int64(3), min: sdk.Bound(1), max: sdk.Bound(10000),
		doc: "cv mode: run at least this many batches."},
	{path: p("lifecycle", "warmup", "max_batches"), kind: kInt, def: int64(20), min: sdk.Bound(1), max: sdk.Bound(10000),
		doc: "cv mode: run at most this many batches; must be ≥ min_batches and ≥ window."},
	{path: p("lifecycle", "warmup", "max_s"), kind: kFloat, def: 60.0, min: sdk.Bound(0), max: sdk.Bound(3600),
		doc: "cv mode: start no further batch once warm-up has run this many seconds (the batch under way finishes; it may end before min_batches). 0: no time bound."},
	{path: p("lifecycle", "warmup", "window"), kind: kInt, def: int64(3), min: sdk.Bound(2), max: sdk.Bound(10000),
		doc: "cv mode: number of most recent batch latencies the CV is computed over."},

	{path: p("energy", "meters"), kind: kMeters, def: "auto",
		doc: "Energy meter plugins: \"auto\" (every installed energy plugin that finds a device), or a list of plugin names (an empty list measures no energy). A table [energy.<meter>] is that meter's own configuration, passed to its Configure."},
	{path: p("energy", "interval"), kind: kDuration, def: "", allowEmpty: true, min: sdk.Bound(0.001), max: sdk.Bound(10),
		doc: "Sampling interval of every meter (a duration such as \"50ms\"). A meter's own table (the key its schema marks as its sampling interval, `interval` in nvml, rapl and the examples) beats this, which beats the plugin's default; \"\": each plugin's default. A plugin never samples slower than its counter's wrap bound."},

	{path: p("energy", "carbon_intensity_g_per_kwh"), kind: kFloat, defDoc: "none: no CO₂ figure at all", min: sdk.Bound(0), max: sdk.Bound(5000),
		doc: "The grid's carbon intensity in grams of CO₂e per kWh, your own figure (lemctl never assumes one). When set, results carry energy.co2e: grams per run, per request and per output token (g = J ÷ 3.6e6 × this), with this intensity and its source. `lemctl run --carbon-intensity` beats it."},
	{path: p("energy", "carbon_intensity_source"), kind: kString, defDoc: "none (recorded as not stated)",
		doc: "Where the carbon intensity comes from (a grid operator's report, a year, a region), recorded with every CO₂ figure. Only with carbon_intensity_g_per_kwh."},

	{path: p("repository", "plugin"), kind: kString, def: "fsstore", pattern: pluginPattern, patternDoc: pluginPatternDoc,
		doc: "Repository plugin that stores raw and aggregated results. Every other key of [repository] is the plugin's own table."},
	{path: p("repository", "path"), kind: kString, def: "", allowEmpty: true,
		doc: "Where results go. \"\": --results-dir (default ./results). Per-invocation: not part of the config hash."},

	{path: p("validity", "min_window_s"), kind: kFloat, def: 10.0, min: sdk.Bound(0), max: sdk.Bound(86400),
		doc: "window_too_short (a warning) when the measured window is shorter than this many seconds. 0: no minimum."},
	{path: p("validity", "min_counter_updates"), kind: kInt, def: int64(10), min: sdk.Bound(0), max: sdk.Bound(1_000_000),
		doc: "too_few_counter_updates (a warning) when a measured domain's counter changed fewer times in the window. 0: no minimum."},
	{path: p("validity", "temperature_drift_c"), kind: kFloat, def: 10.0, min: sdk.Bound(0), minOpen: true, max: sdk.Bound(200),
		doc: "temperature_drift (a warning) when a domain's temperature, over the samples read inside the measured window, ranges over more than this many °C (meters that report a temperature, such as nvml)."},
	{path: p("validity", "max_uncertainty"), kind: kFloat, def: 0.10, min: sdk.Bound(0), max: sdk.Bound(10),
		doc: "uncertainty_too_high (an error: the result is invalid) when the total energy's standard uncertainty is more than this share of it (0.10 = 10 %); 0 means no limit (docs/methodology.md, \"Uncertainty budget\")."},
	{path: p("validity", "integration_mismatch"), kind: kFloat, def: 0.10, min: sdk.Bound(0), minOpen: true, max: sdk.Bound(10),
		doc: "counter_integration_mismatch (a warning) when a counter domain's energy and its integrated instant power differ, over the window, by more than this share of the integral (0.10 = 10 %) plus the edge term (docs/methodology.md, \"Validity\"; meters that report both, such as nvml)."},
	{path: p("validity", "max_throttle_share"), kind: kFloat, def: 0.05, min: sdk.Bound(0), max: sdk.Bound(1),
		doc: "throttled_window when a domain's clocks were held down by thermal or power limits (clock-event reasons, meters that read them such as nvml) during the measured window: a warning up to this share of the window (0.05 = 5 %), an error (the result is invalid) above it. 0: any throttling is invalid (docs/methodology.md, \"Throttling\")."},
	{path: p("validity", "max_error_rate"), kind: kFloat, def: 0.05, min: sdk.Bound(0), max: sdk.Bound(1),
		doc: "requests_failed when requests of a constant or poisson load fail (a server's HTTP errors, timeouts, dropped streams, counted by kind): a warning up to this share of the requests sent (0.05 = 5 %), an error (the result is invalid) above it."},
	{path: p("validity", "min_window_overlap"), kind: kFloat, def: 0.5, min: sdk.Bound(0), max: sdk.Bound(1),
		doc: "Aggregation raises windows_not_concurrent (an error) when the workers' measured windows have in common less than this share of the shortest window (0.5 = 50 %). 0: no check."},
}

func p(segs ...string) []string { return segs }

// subTables are the top-level tables and sub-tables of the host schema.
var subTables = map[string][]string{
	"":          {"model", "engine", "workload", "launch", "lifecycle", "energy", "repository", "validity"},
	"workload":  {"decoding"},
	"lifecycle": {"warmup"},
	"launch":    {"call_timeouts", "slurm"},
}

var specByPath = func() map[string]*keySpec {
	m := make(map[string]*keySpec, len(schema))
	for i := range schema {
		m[pathKey(schema[i].path...)] = &schema[i]
	}
	return m
}()

// validDoc describes the valid values of a key for an error message.
func (k *keySpec) validDoc() string {
	if k.validText != "" {
		return k.validText
	}
	switch k.kind {
	case kDevices:
		return `"cpu", or a list of device indices (integers ≥ 0) and device ids (strings without spaces, as an energy plugin's inventory names them), without duplicates`
	case kMeters:
		return `"auto", or a list of distinct energy plugin names`
	case kBool:
		return "true or false"
	}
	if len(k.enum) > 0 {
		q := make([]string, len(k.enum))
		for i, e := range k.enum {
			q[i] = strconv.Quote(e)
		}
		return "one of " + strings.Join(q, ", ")
	}
	if k.pattern != nil {
		return k.patternDoc
	}
	var typ string
	switch k.kind {
	case kString:
		typ = "a string"
		if !k.allowEmpty && k.def == nil {
			typ = "a non-empty string"
		}
		return typ
	case kInt:
		typ = "an integer"
	case kFloat:
		typ = "a number"
	case kDuration:
		typ = `a duration such as "100ms"`
		if k.allowEmpty {
			typ = `"" or a duration such as "100ms"`
		}
	}
	return typ + rangeDoc(k)
}

func rangeDoc(k *keySpec) string {
	unit := ""
	if k.kind == kDuration {
		unit = "s"
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) + unit }
	switch {
	case k.min != nil && k.max != nil:
		open := "["
		if k.minOpen {
			open = "("
		}
		return fmt.Sprintf(" in %s%s, %s]", open, f(*k.min), f(*k.max))
	case k.min != nil:
		if k.minOpen {
			return " > " + f(*k.min)
		}
		return " ≥ " + f(*k.min)
	}
	return ""
}

// describe names a value and its TOML type for a "wrong type" message.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return "string " + echo.Quote(v)
	case int64:
		return fmt.Sprintf("integer %d", v)
	case float64:
		return "float " + strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		return fmt.Sprintf("boolean %v", v)
	case []any:
		return "array"
	case []map[string]any:
		return "array of tables"
	case map[string]any:
		return "table"
	case time.Time:
		return "date-time " + v.Format(time.RFC3339Nano)
	case nil:
		return "nothing"
	}
	return fmt.Sprintf("%T", v)
}

// check validates v against the spec and returns its canonical form, or a message.
func (k *keySpec) check(v any) (any, string) {
	wrong := func(want string) (any, string) { return nil, fmt.Sprintf("wrong type: %s, want %s", describe(v), want) }
	switch k.kind {
	case kString:
		s, ok := v.(string)
		if !ok {
			return wrong("a string")
		}
		if s == "" && !k.allowEmpty {
			return nil, "must not be empty"
		}
		if len(k.enum) > 0 && !slices.Contains(k.enum, s) {
			return nil, echo.Quote(s) + " is not a valid value"
		}
		if k.pattern != nil && !k.pattern.MatchString(s) {
			return nil, echo.Quote(s) + " is not valid"
		}
		return s, ""
	case kBool:
		b, ok := v.(bool)
		if !ok {
			return wrong("true or false")
		}
		return b, ""
	case kInt:
		i, ok := v.(int64)
		if !ok {
			return wrong("an integer")
		}
		if msg := k.checkRange(float64(i)); msg != "" {
			return nil, fmt.Sprintf("%d is out of range", i)
		}
		return i, ""
	case kFloat:
		var f float64
		switch n := v.(type) {
		case int64:
			f = float64(n)
		case float64:
			f = n
		default:
			return wrong("a number")
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Sprintf("%v is not a finite number", f)
		}
		if msg := k.checkRange(f); msg != "" {
			return nil, fmt.Sprintf("%s is out of range", strconv.FormatFloat(f, 'g', -1, 64))
		}
		return f, ""
	case kDuration:
		s, ok := v.(string)
		if !ok {
			return wrong(`a duration string such as "100ms"`)
		}
		if s == "" && k.allowEmpty {
			return "", ""
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, echo.Quote(s) + " is not a duration"
		}
		if msg := k.checkRange(d.Seconds()); msg != "" {
			return nil, echo.Quote(s) + " is out of range"
		}
		return d.String(), ""
	case kDevices:
		return checkDevices(v)
	case kMeters:
		return checkMeters(v)
	}
	return nil, "unsupported key kind"
}

func (k *keySpec) checkRange(f float64) string {
	if k.min != nil && (f < *k.min || (k.minOpen && f == *k.min)) {
		return "low"
	}
	if k.max != nil && f > *k.max {
		return "high"
	}
	return ""
}

// validDeviceID reports whether id can name a device: non-empty, without spaces or control
// characters (ids come from the energy plugins' inventories, so no finer check is possible here).
func validDeviceID(id string) bool {
	for _, r := range id {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
	}
	return id != ""
}

func checkDevices(v any) (any, string) {
	switch v := v.(type) {
	case string:
		if v == "cpu" {
			return "cpu", ""
		}
		return nil, echo.Quote(v) + " is not a device list"
	case []any:
		if len(v) == 0 {
			return nil, "the device list is empty"
		}
		out := make([]any, 0, len(v))
		seen := map[string]bool{}
		for i, e := range v {
			var id string
			switch e := e.(type) {
			case int64:
				if e < 0 {
					return nil, fmt.Sprintf("element %d: device index %d is negative", i, e)
				}
				id = strconv.FormatInt(e, 10)
				out = append(out, e)
			case string:
				switch {
				case e == "cpu":
					if len(v) != 1 {
						return nil, fmt.Sprintf("element %d: \"cpu\" cannot be mixed with devices", i)
					}
					return "cpu", ""
				case !validDeviceID(e):
					return nil, fmt.Sprintf("element %d: %s is not a device id (a non-empty string without spaces or control characters), a device index nor \"cpu\"", i, echo.Quote(e))
				}
				id = e
				if n, err := strconv.ParseInt(e, 10, 64); err == nil && n >= 0 {
					// A string of digits is the index it spells, as in the canonical form.
					id = strconv.FormatInt(n, 10)
					out = append(out, n)
				} else {
					out = append(out, e)
				}
			default:
				return nil, fmt.Sprintf("element %d: wrong type %s", i, describe(e))
			}
			if seen[id] {
				return nil, fmt.Sprintf("element %d: device %s is listed twice", i, echo.Value(id))
			}
			seen[id] = true
		}
		return out, ""
	}
	return nil, fmt.Sprintf("wrong type: %s", describe(v))
}

func checkMeters(v any) (any, string) {
	switch v := v.(type) {
	case string:
		if v == "auto" {
			return "auto", ""
		}
		return nil, fmt.Sprintf("%s is not valid (write a list for one meter: [%s])", echo.Quote(v), echo.Quote(v))
	case []any:
		out := make([]any, 0, len(v))
		seen := map[string]bool{}
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Sprintf("element %d: wrong type %s, want a plugin name", i, describe(e))
			}
			if !pluginPattern.MatchString(s) {
				return nil, fmt.Sprintf("element %d: %s is not a plugin name", i, echo.Quote(s))
			}
			if seen[s] {
				return nil, fmt.Sprintf("element %d: meter %s is listed twice", i, echo.Quote(s))
			}
			seen[s] = true
			out = append(out, s)
		}
		return out, ""
	}
	return nil, fmt.Sprintf("wrong type: %s", describe(v))
}
