// Package measurecmd is `lemctl measure -- CMD ARGS…`: the energy of any command, like
// `perf stat` for energy. It starts the chosen energy plugins, runs the command with the
// terminal's stdin/stdout/stderr, stops the meters when it exits, and prints per-domain energy,
// mean and peak power, duration and the validity findings. It exits with the command's own exit
// code (128 + signal when the command was killed), so it can wrap anything in a script.
package measurecmd

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/lemctl/lemctl/host/cli/resultscmd"
	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/cliutil/render"
	"github.com/lemctl/lemctl/host/config"
	"github.com/lemctl/lemctl/host/discovery"
	"github.com/lemctl/lemctl/host/echo"
	"github.com/lemctl/lemctl/host/energy"
	"github.com/lemctl/lemctl/host/launch"
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/sysinfo"
	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/clock"
	"github.com/lemctl/lemctl/sdk/hostclient"
)

// Options are measure's flags and the command to measure.
type Options struct {
	F *cliutil.Factory
	// Command is CMD ARGS…, the command to run under the meters.
	Command  []string
	Meters   []string
	Sets     []string
	Interval time.Duration
	Output   string
	// CallTimeout bounds each call to a meter plugin (Configure, Inventory, Start, Stop…); 0: none.
	CallTimeout time.Duration
}

// NewCommand builds `lemctl measure`.
func NewCommand(f *cliutil.Factory) *cobra.Command { return NewCmdMeasure(f, nil) }

// NewCmdMeasure builds `lemctl measure`; runF, when not nil, runs instead of measureRun (tests).
func NewCmdMeasure(f *cliutil.Factory, runF func(*Options) error) *cobra.Command {
	o := &Options{F: f}
	cmd := &cobra.Command{
		Use:   "measure [--meter NAME]… [--set METER.KEY=VALUE]… [--interval D] [--output table|json] -- CMD [ARGS…]",
		Short: "Measure the energy of any command",
		Long: "measure runs CMD under every chosen energy plugin (all installed ones by default) and prints the\n" +
			"energy of each domain over the command's run, mean and peak power, duration and validity.\n" +
			"It exits with CMD's exit code (128 + signal if CMD was killed).",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Command = args
			if runF != nil {
				return runF(o)
			}
			return measureRun(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&o.Meters, "meter", nil, "energy plugin to use (repeatable; default: every installed energy plugin)")
	fl.StringArrayVar(&o.Sets, "set", nil, "a meter's config value, METER.KEY=VALUE with a TOML value (e.g. nvml.interval=\"10ms\")")
	fl.DurationVar(&o.Interval, "interval", 0, "sampling interval (default: each plugin's own)")
	fl.DurationVar(&o.CallTimeout, "call-timeout", hostclient.DefaultCallTimeouts().Control, "how long to wait for a meter plugin to answer one call before failing (0: no limit)")
	render.OutputVar(cmd, &o.Output)
	fl.SetInterspersed(false)
	return cmd
}

// Report is what measure prints with --output json.
type Report struct {
	Command   []string `json:"command"`
	ExitCode  int      `json:"exit_code"`
	DurationS float64  `json:"duration_s"`
	StartUnix int64    `json:"start_unix_ns"`
	EndUnix   int64    `json:"end_unix_ns"`
	TotalJ    *float64 `json:"total_j"`
	// UncertaintyJ is the standard uncertainty of TotalJ (docs/methodology.md, "Uncertainty budget").
	UncertaintyJ *float64         `json:"uncertainty_j"`
	Domains      []DomainReport   `json:"domains"`
	Validity     results.Validity `json:"validity"`
	Overhead     results.Overhead `json:"overhead"`

	// CountedDomains are the domains TotalJ sums (host/energy's containment rule).
	CountedDomains []string `json:"counted_domains"`
}

// DomainReport is one domain's figures over the command's run.
type DomainReport struct {
	ID             string            `json:"id"`
	Name           string            `json:"name,omitempty"`
	Plugin         string            `json:"plugin"`
	Kind           string            `json:"kind"`
	Scope          string            `json:"scope"`
	Method         string            `json:"method"`
	Confidence     string            `json:"confidence"`
	Available      bool              `json:"available"`
	Reason         string            `json:"reason,omitempty"`
	EnergyJ        *float64          `json:"total_j"` // as a domain's total_j in results
	UncertaintyJ   *float64          `json:"uncertainty_j"`
	MeanPowerW     *float64          `json:"mean_power_w"`
	PeakPowerW     *float64          `json:"peak_power_w"`
	CounterUpdates *int              `json:"counter_updates"`
	UpdatePeriodS  *float64          `json:"update_period_s"`
	ResolutionJ    *float64          `json:"resolution_j"`
	Samples        int               `json:"samples"`
	Health         []results.Finding `json:"health"`
}

type meter struct {
	name   string
	client *hostclient.Client
	id     string
}

func measureRun(ctx context.Context, o *Options) error {
	env, args := o.F, o.Command
	if o.CallTimeout < 0 {
		return cliutil.Usagef("--call-timeout %s: want a duration of 0 (no limit) or more, e.g. 30s", o.CallTimeout)
	}
	timeouts := hostclient.DefaultCallTimeouts()
	timeouts.Control = o.CallTimeout
	tables := map[string]map[string]any{}
	for _, s := range o.Sets {
		path, value, err := config.ParseSet(s)
		if err != nil {
			return cliutil.Usagef("--set %s", err)
		}
		if len(path) != 2 {
			return cliutil.Usagef("--set %s: want METER.KEY=VALUE (e.g. rapl.interval=\"50ms\")", echo.Quote(s))
		}
		if tables[path[0]] == nil {
			tables[path[0]] = map[string]any{}
		}
		tables[path[0]][path[1]] = jsonable(value)
	}
	cat, err := env.Catalog(ctx, "")
	if err != nil {
		return cliutil.Usage(err)
	}
	// One process per meter: the automatic selection's process is the one that measures.
	sess := cat.NewSession()
	defer sess.Close()
	sess.SetCallTimeouts(timeouts)
	names := o.Meters
	auto := len(names) == 0
	if auto {
		for _, p := range cat.ByKind(sdk.KindEnergy) {
			names = append(names, p.Name)
		}
	}
	for name := range tables {
		if !contains(names, name) {
			return cliutil.Usagef("--set %s.…: %s is not a meter of this measurement (meters: %s)", echo.Value(name), echo.Quote(name), strings.Join(names, ", "))
		}
	}
	// Without --meter, a meter that is installed but unusable is left out with a warning (in the
	// report's findings); one unavailable on this hardware is a quiet note.
	var refused []results.Finding
	if auto {
		var out []discovery.Refused
		names, out = sess.AutoMeters(ctx, tables)
		refused = discovery.RefusedFindings(env.Logger, out, "fix or remove the plugin, or choose the meters with --meter")
	}
	var meters []meter
	for _, name := range names {
		c, err := sess.Open(ctx, name, sdk.KindEnergy, tables[name])
		if err != nil {
			if discovery.IsUsage(err) {
				return cliutil.Usagef("--meter %s: %v", name, err)
			}
			return cliutil.Failed(fmt.Errorf("start meter %s: %w", name, err))
		}
		meters = append(meters, meter{name: name, client: c})
	}
	if len(meters) == 0 {
		env.Logger.Warn("no energy plugin is installed: measuring duration only", "searched", strings.Join(cat.Searched(), ", "))
	}

	sys := sysinfo.Default()
	cpu0 := meterCPU(sys, meters)
	var edge time.Duration // energy.EdgeWait: the command starts and the meters stop this long after
	for i := range meters {
		s, err := meters[i].client.Meter().Start(ctx, sdk.StartRequest{Interval: o.Interval, Label: "measure"})
		if err != nil {
			return cliutil.Failed(fmt.Errorf("start meter %s: %w", meters[i].name, sess.Explain(meters[i].client, err)))
		}
		meters[i].id = s.ID
		edge = max(edge, energy.EdgeWait(s))
	}
	time.Sleep(edge)

	// The command shares the terminal: Ctrl-C reaches it directly, so measure itself ignores
	// SIGINT/SIGQUIT while it waits (like time(1) and perf stat).
	signal.Ignore(os.Interrupt, syscall.SIGQUIT)
	defer signal.Reset(os.Interrupt, syscall.SIGQUIT)
	c := exec.Command(args[0], args[1:]...)
	c.Stdin, c.Stdout, c.Stderr = env.In, os.Stdout, os.Stderr
	if f, ok := env.Out.(*os.File); !ok || f != os.Stdout {
		c.Stdout = env.Out
	}
	start := clock.Now()
	runErr := c.Run()
	end := clock.Now()
	code, err := launch.ExitCode(runErr)
	if err != nil {
		stopAll(ctx, meters)
		return cliutil.Exit(127, fmt.Errorf("run %s: %w", args[0], err))
	}

	time.Sleep(edge)
	var ms []*sdk.Measurement
	plugin := map[string]string{}
	for _, m := range meters {
		meas, err := m.client.Meter().Stop(context.WithoutCancel(ctx), m.id)
		if err != nil {
			env.Logger.Warn("stop meter", "meter", m.name, "error", sess.Explain(m.client, err))
			continue
		}
		for _, d := range meas.Domains {
			plugin[d.Domain.ID] = m.name
		}
		ms = append(ms, meas)
	}
	cpu1 := meterCPU(sys, meters)
	rep := report(args, code, start, end, ms, plugin)
	rep.Validity.Findings = append(rep.Validity.Findings, refused...)
	if cpu0 >= 0 && cpu1 >= 0 && rep.DurationS > 0 {
		s := float64(cpu1-cpu0) / 1e9
		rep.Overhead = results.Overhead{MeterCPUS: results.Float(s), Share: results.Float(s / rep.DurationS)}
	}
	if o.Output == render.FormatJSON {
		if err := render.JSON(env.Out, rep); err != nil {
			return err
		}
	} else {
		writeTable(env.Err, rep)
	}
	if code != 0 {
		return cliutil.Exit(code, nil)
	}
	return nil
}

func stopAll(ctx context.Context, meters []meter) {
	for _, m := range meters {
		_, _ = m.client.Meter().Stop(context.WithoutCancel(ctx), m.id)
	}
}

func meterCPU(sys *sysinfo.Reader, meters []meter) int64 {
	if len(meters) == 0 {
		return -1
	}
	var total int64
	for _, m := range meters {
		ns, err := sys.CPUTimeNS(m.client.Pid())
		if err != nil {
			return -1
		}
		total += ns
	}
	return total
}

func report(args []string, code int, start, end clock.Stamp, ms []*sdk.Measurement, plugin map[string]string) *Report {
	iv := energy.Interval{StartMonoNS: start.MonoNS, EndMonoNS: end.MonoNS}
	v := config.DefaultValidity() // measure has no config: the [validity] defaults
	e, findings := energy.Compute(energy.Input{Plugin: plugin, Measurements: ms, Window: iv, NoBaseline: true,
		Thresholds: energy.Thresholds{MinCounterUpdates: v.MinCounterUpdates, TemperatureDriftC: v.TemperatureDriftC, IntegrationMismatch: v.IntegrationMismatch,
			MaxThrottleShare: v.MaxThrottleShare, MaxUncertainty: v.MaxUncertainty}})
	rep := &Report{Command: args, ExitCode: code, DurationS: iv.Seconds(), StartUnix: start.WallNS, EndUnix: end.WallNS, TotalJ: e.TotalJ, UncertaintyJ: e.UncertaintyJ, Domains: []DomainReport{}}
	rep.CountedDomains = append([]string{}, e.CountedDomains...)
	samples := map[string][]sdk.Sample{}
	for _, m := range ms {
		for _, d := range m.Domains {
			samples[d.Domain.ID] = d.Samples
		}
	}
	for _, d := range e.Domains {
		dr := DomainReport{ID: d.ID, Name: d.Name, Plugin: d.Plugin, Kind: d.Kind, Scope: d.Scope, Method: d.Method, Confidence: d.Confidence,
			Available: d.Available, Reason: d.Reason, EnergyJ: d.TotalJ, UncertaintyJ: d.UncertaintyJ, CounterUpdates: d.CounterUpdates, UpdatePeriodS: d.UpdatePerS,
			ResolutionJ: d.ResolutionJ, Health: d.Health, Samples: len(samples[d.ID])}
		if d.TotalJ != nil {
			dr.MeanPowerW = results.Ratio(*d.TotalJ, rep.DurationS)
			dr.PeakPowerW = peak(samples[d.ID], iv)
		}
		rep.Domains = append(rep.Domains, dr)
	}
	rep.Validity = results.ValidityOf(findings, e.Domains)
	return rep
}

// peak is the highest power in the window: the instantaneous readings when the meter has them,
// else the energy differences over spans of at least 100 ms (shorter spans magnify the counter's
// quantisation).
func peak(samples []sdk.Sample, iv energy.Interval) *float64 {
	best := math.NaN()
	for _, s := range samples {
		if s.MonoNS >= iv.StartMonoNS && s.MonoNS <= iv.EndMonoNS && !math.IsNaN(s.PowerW) && !(s.PowerW <= best) {
			best = s.PowerW
		}
	}
	if !math.IsNaN(best) {
		return results.Float(best)
	}
	const span = int64(100 * time.Millisecond)
	j := 0
	for i := range samples {
		for j < i && samples[i].MonoNS-samples[j+1].MonoNS >= span {
			j++
		}
		if samples[i].MonoNS-samples[j].MonoNS >= span {
			p := float64(samples[i].Energy-samples[j].Energy) / 1e6 / (float64(samples[i].MonoNS-samples[j].MonoNS) / 1e9)
			if !(p <= best) {
				best = p
			}
		}
	}
	if math.IsNaN(best) {
		return nil
	}
	return results.Float(best)
}

func writeTable(w io.Writer, r *Report) {
	fmt.Fprintf(w, "\n Energy of %q (exit %d), %.3f s:\n\n", strings.Join(r.Command, " "), r.ExitCode, r.DurationS)
	sort.SliceStable(r.Domains, func(i, j int) bool { return r.Domains[i].ID < r.Domains[j].ID })
	var rows [][]string
	var unavailable []string
	for _, d := range r.Domains {
		if !d.Available {
			rows = append(rows, []string{"  " + d.ID, d.Kind, d.Plugin, "-", "unavailable (below)", "", ""})
			unavailable = append(unavailable, fmt.Sprintf("  %s: unavailable: %s", d.ID, d.Reason))
			continue
		}
		rows = append(rows, []string{"  " + d.ID, d.Kind, d.Plugin, d.Method, numU(d.EnergyJ, d.UncertaintyJ) + " J", num(d.MeanPowerW) + " W", num(d.PeakPowerW) + " W"})
	}
	if len(r.Domains) == 0 {
		rows = append(rows, []string{"  (no energy plugin installed)", "", "", "", "", "", ""})
	}
	_ = render.Table(w, []string{"  DOMAIN", "KIND", "METER", "METHOD", "ENERGY", "MEAN", "PEAK"}, rows)
	for _, u := range unavailable {
		fmt.Fprintln(w, u)
	}
	if r.TotalJ != nil {
		fmt.Fprintf(w, "\n  total (counted: %s): %s J\n", strings.Join(r.CountedDomains, " + "), numU(r.TotalJ, r.UncertaintyJ))
	}
	if r.Overhead.Share != nil {
		fmt.Fprintf(w, "  meter CPU: %.3f s (%.2f %% of the run)\n", *r.Overhead.MeterCPUS, 100**r.Overhead.Share)
	}
	all := append([]results.Finding{}, r.Validity.Findings...)
	for _, d := range r.Domains {
		all = append(all, d.Health...)
	}
	fmt.Fprintf(w, "  validity: %s\n", results.Verdict(r.Validity.Valid, all, nil))
	_ = resultscmd.WriteFindings(w, "  ", all, nil)
	fmt.Fprintln(w)
}

func num(p *float64) string {
	if p == nil {
		return "—"
	}
	return fmt.Sprintf("%.4g", *p)
}

// numU is a figure with its standard uncertainty, "v ± u".
func numU(p, u *float64) string {
	if p == nil || u == nil {
		return num(p)
	}
	return fmt.Sprintf("%.4g ± %.2g", *p, *u)
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// jsonable converts TOML-decoded values (int64, time, …) to JSON-friendly ones.
func jsonable(v any) any {
	switch x := v.(type) {
	case int64:
		return float64(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonable(e)
		}
		return out
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = jsonable(e)
		}
		return out
	}
	return v
}
