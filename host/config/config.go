package config

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/lemctl/lemctl/host/echo"
	"github.com/lemctl/lemctl/sdk"
)

// Config is an effective experiment configuration: the file, overridden by the command line,
// with every default filled in. Its JSON form (Map) is what results record and what Hash hashes.
type Config struct {
	Name       string     `json:"name"`
	Model      Model      `json:"model"`
	Engine     Engine     `json:"engine"`
	Workload   Workload   `json:"workload"`
	Launch     Launch     `json:"launch"`
	Lifecycle  Lifecycle  `json:"lifecycle"`
	Energy     Energy     `json:"energy"`
	Repository Repository `json:"repository"`
	Validity   Validity   `json:"validity"`

	// File is the config file's name as given ("" when built from bytes without a name).
	File string `json:"-"`
	// Sources records where each overridden value came from, by dotted key path: "flag --set",
	// "flag -d", "flag -n". Keys absent here come from the file or from the defaults.
	Sources map[string]string `json:"-"`
	// Warnings are problems that do not make the config invalid.
	Warnings []string `json:"-"`
	// PluginTablesChecked is false when no PluginConfigurer was given: plugin tables were not
	// checked by their plugins.
	PluginTablesChecked bool `json:"-"`
	// PluginTables is the one table each plugin named by the config is configured with, by
	// plugin name: the keys of every section naming it merged ([model] and [engine] when one
	// plugin serves both), the repository's resolved path included. `config check` sends
	// exactly these tables, and so does the run.
	PluginTables map[string]map[string]any `json:"-"`
}

// PluginTable returns the resolved table of plugin (see PluginTables), never nil.
func (c *Config) PluginTable(plugin string) map[string]any {
	if t := c.PluginTables[plugin]; t != nil {
		return t
	}
	return map[string]any{}
}

// Model is [model].
type Model struct {
	Plugin string `json:"plugin"`
	Ref    string `json:"ref"`
	// Precision is model.precision: auto, fp32, int8 or int4. For a synthetic reference it is
	// already applied to Ref (see PrecisionRef).
	Precision string `json:"precision"`
	// Options are the loader plugin's own keys (every other key of [model]).
	Options map[string]any `json:"-"`
}

// Engine is [engine].
type Engine struct {
	Plugin string `json:"plugin"`
	// Options are the engine plugin's own keys (every other key of [engine]).
	Options map[string]any `json:"-"`
}

// Workload is [workload].
type Workload struct {
	Dataset        string  `json:"dataset"`
	Format         string  `json:"format"`
	Column         string  `json:"column"`
	Prompts        int     `json:"prompts"`
	Seed           uint64  `json:"seed"`
	Order          string  `json:"order"`
	BatchSize      int     `json:"batch_size"`
	MaxInputTokens int     `json:"max_input_tokens"`
	MaxNewTokens   int     `json:"max_new_tokens"`
	Repeats        int     `json:"repeats"`
	MinWindowS     float64 `json:"min_window_s"`
	// Arrival is "batch", "constant" or "poisson" (docs/serving.md); Rate (requests/s, 0 when
	// not set), MaxConcurrency, Requests and DurationS shape a constant or poisson load.
	Arrival        string   `json:"arrival"`
	Rate           float64  `json:"rate,omitempty"`
	MaxConcurrency int      `json:"max_concurrency"`
	Requests       int      `json:"requests"`
	DurationS      float64  `json:"duration_s"`
	Decoding       Decoding `json:"decoding"`
}

// OpenLoop reports whether requests arrive on a schedule (constant or poisson) rather than in
// static batches.
func (w Workload) OpenLoop() bool { return w.Arrival == "constant" || w.Arrival == "poisson" }

// Decoding is [workload.decoding].
type Decoding struct {
	Greedy      bool    `json:"greedy"`
	Temperature float64 `json:"temperature"`
	TopK        int     `json:"top_k"`
	TopP        float64 `json:"top_p"`
	IgnoreEOS   bool    `json:"ignore_eos"`
}

// Launch is [launch].
type Launch struct {
	Devices            Devices `json:"devices"`
	ProcessesPerDevice int     `json:"processes_per_device"`
	Threads            int     `json:"threads"`
	PinCPUs            bool    `json:"pin_cpus"`
	// StallTimeoutS is the watchdog's limit in seconds (0: off).
	StallTimeoutS float64 `json:"stall_timeout_s"`
	// CallTimeouts are the per-call deadlines on plugins ([launch.call_timeouts]).
	CallTimeouts CallTimeouts `json:"call_timeouts"`
	// Launcher is "local" or "slurm" (docs/slurm.md).
	Launcher string      `json:"launcher"`
	Slurm    SlurmLaunch `json:"slurm"`
}

// CallTimeouts is [launch.call_timeouts]: how long the host waits for one plugin call, in
// seconds per kind of call (0: no deadline of its own).
type CallTimeouts struct {
	ControlS    float64 `json:"control_s"`
	RepositoryS float64 `json:"repository_s"`
	LoadS       float64 `json:"load_s"`
	GenerateS   float64 `json:"generate_s"`
}

// SlurmLaunch is [launch.slurm].
type SlurmLaunch struct {
	// Submit: outside an allocation, submit the run with sbatch instead of refusing.
	Submit bool `json:"submit"`
	// Port is the coordinator's TCP port (0: any free port).
	Port int `json:"port"`
}

// Lifecycle is [lifecycle].
type Lifecycle struct {
	BaselineS    float64 `json:"baseline_s"`
	ThermalWaitS float64 `json:"thermal_wait_s"`
	CooldownS    float64 `json:"cooldown_s"`
	Warmup       Warmup  `json:"warmup"`
}

// Warmup is [lifecycle.warmup].
type Warmup struct {
	Mode        string  `json:"mode"`
	Batches     int     `json:"batches"`
	CVThreshold float64 `json:"cv_threshold"`
	MinBatches  int     `json:"min_batches"`
	MaxBatches  int     `json:"max_batches"`
	MaxS        float64 `json:"max_s"`
	Window      int     `json:"window"`
}

// Energy is [energy].
type Energy struct {
	// Meters lists the meter plugins; nil means "auto".
	Meters Meters `json:"meters"`
	// Interval is a Go duration string, "" for each plugin's default.
	Interval string `json:"interval"`
	// Tables are the [energy.<meter>] tables, by meter name.
	Tables map[string]map[string]any `json:"-"`
	// CarbonIntensity is the user's grid carbon intensity; nil when not configured (then no
	// result carries a CO₂ figure).
	CarbonIntensity *Carbon `json:"carbon_intensity,omitempty"`
}

// Carbon is energy.carbon_intensity_g_per_kwh and energy.carbon_intensity_source.
type Carbon struct {
	GPerKWh float64 `json:"g_per_kwh"`
	// Source is the user's own description of where the figure comes from; "" when not stated.
	Source string `json:"source,omitempty"`
}

// Repository is [repository].
type Repository struct {
	Plugin string `json:"plugin"`
	// Path is where results go ("" means --results-dir). Not hashed.
	Path string `json:"path"`
	// Options are the repository plugin's own keys.
	Options map[string]any `json:"-"`
}

// Validity is [validity]: thresholds of the validity verdict (docs/methodology.md, "Validity").
type Validity struct {
	MinWindowS          float64 `json:"min_window_s"`
	MinCounterUpdates   int     `json:"min_counter_updates"`
	TemperatureDriftC   float64 `json:"temperature_drift_c"`
	IntegrationMismatch float64 `json:"integration_mismatch"`
	MinWindowOverlap    float64 `json:"min_window_overlap"`
	MaxThrottleShare    float64 `json:"max_throttle_share"`
	MaxUncertainty      float64 `json:"max_uncertainty"`
	MaxErrorRate        float64 `json:"max_error_rate"`
}

// Error is one problem with a config: "file:line: key: message (valid: …)". Line is 0 where the
// key has no line (a default, a missing key); Source replaces file:line for a value that came
// from the command line ("flag --set").
type Error struct {
	File    string
	Line    int
	Source  string
	Key     string
	Message string
	Valid   string
}

func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.Source != "":
		b.WriteString(e.Source)
	case e.File != "" && e.Line > 0:
		b.WriteString(e.File + ":" + strconv.Itoa(e.Line))
	case e.File != "":
		b.WriteString(e.File)
	}
	if e.Key != "" {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(echo.Value(e.Key)) // a key name is user input too
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	// A plugin's message may quote a value whole: every line is cut to a readable length.
	b.WriteString(echo.Lines(e.Message))
	if e.Valid != "" {
		b.WriteString(" (valid: " + echo.Lines(e.Valid) + ")")
	}
	return b.String()
}

// Errors is every problem found in one pass, in file order. It is the error Load returns for an
// invalid config.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find each *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

func (es Errors) sort() {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if (a.Source != "") != (b.Source != "") {
			return a.Source == ""
		}
		if a.Line != b.Line {
			if a.Line == 0 || b.Line == 0 {
				return b.Line == 0
			}
			return a.Line < b.Line
		}
		return a.Key < b.Key
	})
}

// PluginConfigurer checks a plugin's table: the host implements it by asking the installed
// plugin's Configure. It returns the per-key errors the plugin reported (keys relative to the
// table); an error return means the plugin could not be asked, and a plugin that is not
// installed must be reported as a *PluginNotInstalledError.
type PluginConfigurer interface {
	ConfigurePlugin(ctx context.Context, plugin string, kind sdk.Kind, table map[string]any) ([]sdk.ConfigError, error)
}

// PluginConfigurerFunc adapts a function to PluginConfigurer.
type PluginConfigurerFunc func(ctx context.Context, plugin string, kind sdk.Kind, table map[string]any) ([]sdk.ConfigError, error)

// ConfigurePlugin calls f.
func (f PluginConfigurerFunc) ConfigurePlugin(ctx context.Context, plugin string, kind sdk.Kind, table map[string]any) ([]sdk.ConfigError, error) {
	return f(ctx, plugin, kind, table)
}

// ErrPluginNotInstalled is matched by errors.Is for a *PluginNotInstalledError.
var ErrPluginNotInstalled = errors.New("plugin not installed")

// PluginNotInstalledError says that no installed plugin of the name serves the kind.
type PluginNotInstalledError struct {
	Plugin string
	Kind   sdk.Kind
	// Installed lists the installed plugins of that kind, for the message.
	Installed []string
	// Searched lists the directories that were searched, for the message.
	Searched []string
	// Other, when not "", says why a plugin of that name that is installed does not count
	// (it serves other kinds), so the message names the real cause.
	Other string
}

func (e *PluginNotInstalledError) Error() string {
	msg := fmt.Sprintf("%s plugin %s is not installed", e.Kind, echo.Quote(e.Plugin))
	if e.Other != "" {
		return msg + ": " + e.Other
	}
	if len(e.Searched) > 0 {
		msg += " (searched " + strings.Join(e.Searched, ", ") + ")"
	}
	return msg
}

// Is reports ErrPluginNotInstalled.
func (e *PluginNotInstalledError) Is(target error) bool { return target == ErrPluginNotInstalled }

// Synthetic preset suffixes of the quantised precisions (the onnx loader's naming).
var precisionSuffix = map[string]string{"int8": "-q8", "int4": "-q4"}

// suffixPrecision returns the precision a synthetic preset name's suffix names ("" when it has
// none).
func suffixPrecision(preset string) string {
	for prec, suf := range precisionSuffix {
		if strings.HasSuffix(preset, suf) {
			return prec
		}
	}
	return ""
}

// PrecisionRef applies precision to ref: for a synthetic:<preset>[?options] reference without a
// precision suffix, int8 and int4 add -q8 or -q4 to the preset; anything else is returned as it
// is (a conflict between the two is a config error, reported by Load).
func PrecisionRef(ref, precision string) string {
	rest, ok := strings.CutPrefix(ref, "synthetic:")
	suf := precisionSuffix[precision]
	if !ok || suf == "" {
		return ref
	}
	name, query, hasQuery := strings.Cut(rest, "?")
	if suffixPrecision(name) != "" {
		return ref
	}
	out := "synthetic:" + name + suf
	if hasQuery {
		out += "?" + query
	}
	return out
}
