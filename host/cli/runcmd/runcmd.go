// Package runcmd is `lemctl run FILE`, the main job: validate the experiment, discover the
// plugins, sample and partition the prompts, start one worker per device slot, coordinate their
// barriers, show progress, then aggregate late and print the summary.
package runcmd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/lemctl/lemctl/examples"
	"github.com/lemctl/lemctl/host/aggregate"
	"github.com/lemctl/lemctl/host/cli/reportcmd"
	"github.com/lemctl/lemctl/host/cli/resultscmd"
	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/cliutil/render"
	"github.com/lemctl/lemctl/host/config"
	"github.com/lemctl/lemctl/host/dataset"
	"github.com/lemctl/lemctl/host/discovery"
	"github.com/lemctl/lemctl/host/echo"
	"github.com/lemctl/lemctl/host/launch"
	htmlreport "github.com/lemctl/lemctl/host/report"
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/sysinfo"
	"github.com/lemctl/lemctl/host/version"
	"github.com/lemctl/lemctl/sdk"
)

// Options are run's positional and flags.
type Options struct {
	F *cliutil.Factory
	// File is the experiment file; "" is the embedded quickstart.
	File    string
	Dataset string
	// Prompts is -n; nil when it was not given.
	Prompts *int
	// CarbonIntensity is --carbon-intensity (g CO₂e per kWh); nil when it was not given.
	CarbonIntensity *float64
	Set             []string
	NoAggregate     bool
	Progress        string // "text", "json" or "quiet"
	Output          string // the summary on stdout: "table" or "json" (the aggregate as stored)
	// Attach is a Slurm job id to follow (a run submitted with launch.slurm.submit = true).
	Attach string
	// Report makes the experiment's HTML report after aggregation (lemctl report).
	Report bool
}

// NewCommand builds `lemctl run`.
func NewCommand(f *cliutil.Factory) *cobra.Command { return NewCmdRun(f, nil) }

// NewCmdRun builds `lemctl run [FILE]`; runF, when not nil, runs instead of runRun (tests: the
// options as parsed, nothing started).
func NewCmdRun(f *cliutil.Factory, runF func(*Options) error) *cobra.Command {
	o := &Options{F: f}
	var prompts int
	var carbon float64
	cmd := &cobra.Command{
		Use:   "run [FILE]",
		Short: "Run an experiment: one worker per device slot, then aggregate",
		Long: "run measures the experiment FILE (default: the embedded examples/quickstart.toml).\n" +
			"Exit codes: 0 ok (even when the validity verdict is false), 1 the run failed or is partial,\n" +
			"2 bad usage or config, 130/143/129 interrupted by SIGINT/SIGTERM/SIGHUP.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Progress != "text" && o.Progress != "json" && o.Progress != "quiet" {
				return cliutil.Usagef("--progress %s: valid values are text, json, quiet", echo.Quote(o.Progress))
			}
			if len(args) == 1 {
				o.File = args[0]
			}
			if cmd.Flags().Changed("prompts") {
				o.Prompts = &prompts
			}
			if cmd.Flags().Changed("carbon-intensity") {
				if !(carbon >= 0) || math.IsInf(carbon, 0) {
					return cliutil.Usagef("--carbon-intensity %v: valid values are grams of CO₂e per kWh, a number ≥ 0", carbon)
				}
				o.CarbonIntensity = &carbon
			}
			if runF != nil {
				return runF(o)
			}
			if o.Attach != "" {
				if len(args) > 0 {
					return cliutil.Usagef("--attach %s follows a submitted job: give no experiment FILE with it", o.Attach)
				}
				return attach(cmd.Context(), o.F, o.Attach, 2*time.Second)
			}
			return runRun(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&o.Dataset, "dataset", "d", "", "dataset (beats workload.dataset)")
	fl.IntVarP(&prompts, "prompts", "n", 0, "number of prompts (beats workload.prompts)")
	fl.Float64Var(&carbon, "carbon-intensity", 0, "grid carbon intensity in g CO₂e per kWh, your own figure (beats energy.carbon_intensity_g_per_kwh): results then carry CO₂e per request and per output token")
	fl.StringArrayVar(&o.Set, "set", nil, "section.key=VALUE with a TOML value (beats the file; repeatable)")
	fl.BoolVar(&o.NoAggregate, "no-aggregate", false, "leave the raw results; aggregate them later with 'lemctl aggregate EXP'")
	fl.StringVar(&o.Attach, "attach", "", "follow the Slurm job JOBID of a run submitted with launch.slurm.submit = true (its output, then its exit code)")
	fl.StringVar(&o.Progress, "progress", "text", "progress on stderr: text, json (one JSON object per line) or quiet")
	fl.BoolVar(&o.Report, "report", false, "write the experiment's HTML report (results/reports/<id>.html) at the end")
	render.OutputVar(cmd, &o.Output)
	return cmd
}

// runRun runs the experiment in o.File ("" = the embedded quickstart).
func runRun(parent context.Context, o *Options) error {
	env, file, prompts := o.F, o.File, o.Prompts
	// First SIGINT, SIGTERM or SIGHUP: stop gracefully; a second: force.
	ctx, st, stopWatch := WatchSignals(parent)
	defer stopWatch()
	err := run(ctx, env, o, file, prompts, st)
	if sig, ok := st.Signal(); ok && err != nil && cliutil.CodeOf(err) != 128+int(sig) {
		// Stopped before the workers ran: whatever failed, the signal is why.
		return cliutil.Exit(128+int(sig), fmt.Errorf("interrupted by %s: %w", sigName(sig), err))
	}
	return err
}

// sigName is the conventional name of sig: SIGINT, SIGTERM, SIGHUP.
func sigName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return sig.String()
}

func run(ctx context.Context, env *cliutil.Factory, o *Options, file string, prompts *int, st *Signals) error {
	out, err := Measure(ctx, env, Experiment{File: file, Overrides: config.Overrides{Dataset: o.Dataset, Prompts: prompts, CarbonIntensity: o.CarbonIntensity, Set: o.Set},
		Progress: o.Progress, NoAggregate: o.NoAggregate, Force: st.Force, Signal: st.Signal})
	if err != nil {
		return err
	}
	if out.Submitted {
		return nil
	}
	return report(env, o, out)
}

// Experiment is one experiment for Measure: what `lemctl run` measures, without its output.
type Experiment struct {
	// File is the experiment file; "" is the embedded quickstart.
	File      string
	Overrides config.Overrides
	// Progress is "text", "json" or "quiet" (on env.Err).
	Progress    string
	NoAggregate bool
	// Force, closed, stops the workers at once (a second signal); ctx's end stops them gracefully.
	Force <-chan struct{}
	// Signal, when not nil, names the signal that ended ctx (messages and the exit code).
	Signal func() (syscall.Signal, bool)
}

// Outcome is what Measure made of one experiment.
type Outcome struct {
	ID         string
	ConfigHash string
	// ResultsDir is the repository's path (repository.path as resolved).
	ResultsDir string
	// Aggregated, Data and StoredPath are the aggregate (nil with NoAggregate).
	Aggregated *results.Aggregated
	Data       []byte
	StoredPath string
	// Failed describes the workers that failed (the aggregate was made from the others).
	Failed    []string
	WorldSize int
	// Submitted says that the experiment was not run here but submitted to Slurm with sbatch
	// (launch.slurm.submit = true; the job id is printed): nothing else is set.
	Submitted bool
}

// Measure runs one experiment as `lemctl run` does — validate, plan, launch the workers, wait,
// aggregate — and returns its outcome without printing a summary. The error carries run's exit
// code (cliutil); the Outcome is not nil whenever an experiment id was given, even with an error.
func Measure(ctx context.Context, env *cliutil.Factory, e Experiment) (*Outcome, error) {
	// The Factory's catalog: discovery runs here, once, and the Factory closes it at exit.
	cat, err := env.Catalog(ctx, "")
	if err != nil {
		return nil, cliutil.Usage(err)
	}
	// One process per plugin for the whole parent: the config check, the meter selection, the
	// device inventory, the tokenizer and the repository share it.
	sess := cat.NewSession()
	defer sess.Close()

	copts := config.Options{Overrides: e.Overrides, Configurer: sess, ResultsDir: env.ResultsDir}
	var cfg *config.Config
	if e.File == "" {
		cfg, err = config.Load(ctx, examples.QuickstartName, examples.Quickstart, copts)
	} else {
		cfg, err = config.LoadFile(ctx, e.File, copts)
	}
	if err != nil {
		return nil, cliutil.ConfigUsage(err)
	}
	for _, w := range cfg.Warnings {
		env.Logger.Warn(w)
	}
	// The plugins started to check the config got the default deadlines; from here on every
	// plugin of the parent, those included, has the experiment's.
	sess.SetCallTimeouts(specCallTimeouts(cfg.Launch.CallTimeouts).Client())
	if done, err := slurmOutside(ctx, env, cfg, os.Getenv); done {
		if err != nil {
			return nil, err
		}
		return &Outcome{Submitted: true}, nil
	}
	p, err := newPlan(ctx, env, cat, sess, cfg)
	if err != nil {
		return nil, err
	}
	if e.Signal == nil {
		e.Signal = func() (syscall.Signal, bool) { return 0, false }
	}
	return p.execute(ctx, e)
}

// specCallTimeouts carries launch.call_timeouts into the launch spec.
func specCallTimeouts(t config.CallTimeouts) *launch.CallTimeouts {
	return &launch.CallTimeouts{ControlS: t.ControlS, RepositoryS: t.RepositoryS, LoadS: t.LoadS, GenerateS: t.GenerateS}
}

var unsafeID = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// NewExperimentID returns a unique id that sorts by start time: 20261128T120000Z-name-1a2b3c.
func NewExperimentID(name string, now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	n := strings.Trim(unsafeID.ReplaceAllString(name, "-"), "-")
	if len(n) > 40 {
		n = n[:40]
	}
	if n == "" {
		n = "run"
	}
	return now.UTC().Format("20060102T150405Z") + "-" + n + "-" + hex.EncodeToString(b[:])
}

// pluginRef opens the plugin called name in the session with its resolved table (the process
// the config check started; nothing new starts) and pins it for the workers.
func pluginRef(ctx context.Context, cat *discovery.Catalog, sess *discovery.Session, name string, kind sdk.Kind, table map[string]any) (launch.PluginRef, error) {
	c, err := sess.Open(ctx, name, kind, table)
	if err != nil {
		return launch.PluginRef{}, openError(err)
	}
	info := c.Info()
	ref := launch.PluginRef{Name: name, Path: c.Path(), Version: info.Version, Config: table}
	if p, ok := cat.Find(name); ok {
		ref.SHA256 = p.SHA256
	}
	for _, k := range info.Kinds {
		ref.Kinds = append(ref.Kinds, string(k))
	}
	return ref, nil
}

// openError is a plugin that could not be opened: the user's to fix (exit 2) when it is not
// installed, unusable here or rejected its table, else a failure (exit 1).
func openError(err error) error {
	if discovery.IsUsage(err) {
		return cliutil.Usage(err)
	}
	return cliutil.Failed(err)
}

// unavailableMeter returns the meter's inventory and facts when it lists domains but none is
// available on this host, so the workers (local, on this host) need not start it; else nil.
func unavailableMeter(ctx context.Context, m sdk.Meter) *launch.UnavailableMeter {
	doms, err := m.Inventory(ctx)
	if err != nil || len(doms) == 0 {
		return nil
	}
	for _, d := range doms {
		if d.Available {
			return nil
		}
	}
	out := &launch.UnavailableMeter{Domains: doms}
	if env, err := m.Environment(ctx); err == nil {
		out.Facts = env.Facts
	}
	return out
}

// meterInterval settles the interval a meter is started with: 0 (its own configured interval)
// when its table sets its sampling-interval key (the key its schema marks SamplingInterval);
// else [energy].interval (0 = the meter's default).
func meterInterval(info sdk.Info, table map[string]any, energy int64) int64 {
	for _, k := range info.ConfigSchema {
		if !k.SamplingInterval {
			continue
		}
		if _, own := table[k.Key]; own {
			return 0
		}
	}
	return energy
}

// plan is a validated run, ready to launch.
type plan struct {
	env     *cliutil.Factory
	cat     *discovery.Catalog
	sess    *discovery.Session
	id      string
	specs   []*launch.Spec
	repoRef launch.PluginRef
	runDir  string
	// findings about the whole experiment, for the manifest (meters refused under auto).
	findings []results.Finding
	// slurm is set under launch.launcher = "slurm" (slurm.go).
	slurm *slurmRun
}

func newPlan(ctx context.Context, env *cliutil.Factory, cat *discovery.Catalog, sess *discovery.Session, cfg *config.Config) (*plan, error) {
	p := &plan{env: env, cat: cat, sess: sess, id: NewExperimentID(cfg.Name, time.Now())}
	// One table per plugin, as config resolved and checked it ([model]+[engine] merged when one
	// plugin serves both, the repository's path included).
	loader, err := pluginRef(ctx, cat, sess, cfg.Model.Plugin, sdk.KindLoader, cfg.PluginTable(cfg.Model.Plugin))
	if err != nil {
		return nil, err
	}
	engine, err := pluginRef(ctx, cat, sess, cfg.Engine.Plugin, sdk.KindEngine, cfg.PluginTable(cfg.Engine.Plugin))
	if err != nil {
		return nil, err
	}
	repo, err := pluginRef(ctx, cat, sess, cfg.Repository.Plugin, sdk.KindRepository, cfg.PluginTable(cfg.Repository.Plugin))
	if err != nil {
		return nil, err
	}
	resultsDir, _ := repo.Config["path"].(string)
	p.repoRef = repo
	p.runDir = filepath.Join(resultsDir, "runs", p.id)
	interval := int64(0)
	if cfg.Energy.Interval != "" {
		d, err := time.ParseDuration(cfg.Energy.Interval)
		if err != nil {
			return nil, cliutil.Usagef("energy.interval: %v", err)
		}
		interval = int64(d)
	}
	// The meters (selection, inventory) and the loader (model, dataset) are independent: their
	// plugins start and answer in parallel.
	var meters []launch.PluginRef
	var metersErr error
	metersDone := make(chan struct{})
	go func() {
		defer close(metersDone)
		meters, metersErr = p.selectMeters(ctx, cfg, interval)
	}()
	defer func() { <-metersDone }()

	lc, err := sess.Open(ctx, loader.Name, sdk.KindLoader, loader.Config)
	if err != nil {
		return nil, openError(err)
	}
	art, err := checkContext(ctx, lc.Loader(), cfg)
	if err != nil {
		return nil, err
	}
	resolved := resolvedHere(art, env)
	ds, err := openDataset(ctx, lc.Loader(), cfg)
	if err != nil {
		return nil, err
	}
	<-metersDone
	if metersErr != nil {
		return nil, metersErr
	}
	slots, err := deviceSlots(ctx, sess, cfg, meters)
	if err != nil {
		return nil, err
	}
	if p.slurm, slots, err = newSlurmRun(cfg, slots, os.Getenv); err != nil {
		return nil, err
	}
	if p.slurm != nil && cfg.Launch.PinCPUs {
		env.Logger.Warn("launch.pin_cpus is not applied under the Slurm launcher: Slurm binds each task to its cores (srun --cpu-bind; docs/slurm.md)")
	}
	sample, err := ds.Select(cfg.Workload.Prompts, cfg.Workload.Order, cfg.Workload.Seed)
	if err != nil {
		return nil, cliutil.Usagef("workload.prompts: %v", err)
	}
	if err := tokenizeSample(ctx, lc.Loader(), cfg.Model.Ref, sample, env.Logger); err != nil {
		return nil, cliutil.Failed(err)
	}
	cfgMap := cfg.Map()
	cfgJSON, err := json.Marshal(cfgMap)
	if err != nil {
		return nil, err
	}
	hash, err := config.Hash(cfg)
	if err != nil {
		return nil, err
	}
	var overrides []launch.Override
	for k, src := range cfg.Sources {
		overrides = append(overrides, launch.Override{Key: k, Value: fmt.Sprint(lookup(cfgMap, k)), Source: src})
	}
	world := len(slots)
	loads, err := loadSpecs(cfg, len(sample), world)
	if err != nil {
		return nil, err
	}
	for rank, slot := range slots {
		shard, err := dataset.Shard(sample, rank, world)
		if err != nil {
			return nil, cliutil.Usagef("%v", err)
		}
		spec := &launch.Spec{ExperimentID: p.id, Name: cfg.Name, Rank: rank, WorldSize: world, Device: slot.device,
			Threads: slot.threads, CPUs: slot.cpus, Config: cfgJSON, ConfigHash: hash, Overrides: overrides,
			Model: launch.ModelSpec{Ref: cfg.Model.Ref, Loader: loader, Resolved: resolved}, Engine: engine, Meters: meters, Repository: repo,
			Dataset: launch.DatasetRef{Name: ds.Name, SHA256: ds.SHA256, Prompts: len(sample),
				Records: ds.Len() + ds.Skipped, SkippedRecords: ds.Skipped, NonUTF8Prompts: dataset.NonUTF8(sample)},
			Workload: launch.WorkloadSpec{BatchSize: cfg.Workload.BatchSize, Repeats: cfg.Workload.Repeats, MinWindowS: cfg.Workload.MinWindowS,
				Decoding: sdk.Decoding{MaxNewTokens: cfg.Workload.MaxNewTokens, MaxInputTokens: cfg.Workload.MaxInputTokens,
					Greedy: cfg.Workload.Decoding.Greedy, Temperature: cfg.Workload.Decoding.Temperature, TopK: cfg.Workload.Decoding.TopK,
					TopP: cfg.Workload.Decoding.TopP, Seed: cfg.Workload.Seed, IgnoreEOS: cfg.Workload.Decoding.IgnoreEOS},
				Load: loads[rank]},
			Lifecycle: launch.LifecycleSpec{BaselineS: cfg.Lifecycle.BaselineS, WarmupMode: cfg.Lifecycle.Warmup.Mode,
				WarmupBatch: cfg.Lifecycle.Warmup.Batches, CVThreshold: cfg.Lifecycle.Warmup.CVThreshold, CVWindow: cfg.Lifecycle.Warmup.Window,
				MinBatches: cfg.Lifecycle.Warmup.MinBatches, MaxBatches: cfg.Lifecycle.Warmup.MaxBatches, WarmupMaxS: cfg.Lifecycle.Warmup.MaxS,
				ThermalWaitS: cfg.Lifecycle.ThermalWaitS, CooldownS: cfg.Lifecycle.CooldownS},
			Energy: launch.EnergySpec{IntervalNS: interval, CarbonIntensity: carbonSpec(cfg.Energy.CarbonIntensity)},
			Validity: launch.ValiditySpec{MinWindowS: cfg.Validity.MinWindowS, MinCounterUpdates: cfg.Validity.MinCounterUpdates, TemperatureDriftC: cfg.Validity.TemperatureDriftC,
				IntegrationMismatch: cfg.Validity.IntegrationMismatch, MaxThrottleShare: cfg.Validity.MaxThrottleShare, MaxUncertainty: cfg.Validity.MaxUncertainty,
				MaxErrorRate: cfg.Validity.MaxErrorRate},
			StallTimeoutS: cfg.Launch.StallTimeoutS,
			CallTimeouts:  specCallTimeouts(cfg.Launch.CallTimeouts),
			PauseAt:       os.Getenv("LEM_TEST_PAUSE"),
		}
		for _, pr := range shard {
			spec.Prompts = append(spec.Prompts, sdk.Prompt{ID: pr.ID, Text: pr.Text, IDs: pr.IDs})
		}
		p.specs = append(p.specs, spec)
	}
	p.slurm.attach(p.specs)
	// The last check before anything is written (preflight.go).
	if err := preflight(resultsDir, p.specs, freeBytes); err != nil {
		return nil, err
	}
	return p, nil
}

// loadSpecs splits a constant or poisson load among the workers (docs/serving.md): the requests
// (workload.requests, else round(rate × duration_s), else one per prompt of the sample) as evenly
// as they go, the lower ranks taking one more, and the rate evenly; each worker keeps the whole
// max_concurrency. nil entries for static batches.
func loadSpecs(cfg *config.Config, prompts, world int) ([]*launch.LoadSpec, error) {
	out := make([]*launch.LoadSpec, world)
	w := cfg.Workload
	if !w.OpenLoop() {
		return out, nil
	}
	total := prompts
	switch {
	case w.Requests > 0:
		total = w.Requests
	case w.DurationS > 0:
		total = max(1, int(math.Round(w.Rate*w.DurationS)))
	}
	if total < world {
		return nil, cliutil.Usagef("workload.requests: %d request(s) for %d workers: every worker needs at least one (valid: at least %d requests, or fewer workers)", total, world, world)
	}
	for rank := range out {
		n := total / world
		if rank < total%world {
			n++
		}
		out[rank] = &launch.LoadSpec{Arrival: w.Arrival, Rate: w.Rate / float64(world), Requests: n, MaxConcurrency: w.MaxConcurrency, Seed: w.Seed}
	}
	return out, nil
}

// carbonSpec carries the configured carbon intensity to the workers; nil when none is set.
func carbonSpec(c *config.Carbon) *launch.CarbonSpec {
	if c == nil {
		return nil
	}
	return &launch.CarbonSpec{GPerKWh: c.GPerKWh, Source: c.Source}
}

// selectMeters resolves the meters of the run: those listed, or under "auto" those that answer
// (the others are p.findings), each pinned with its settled interval, and marked unavailable
// when none of its domains is available here.
func (p *plan) selectMeters(ctx context.Context, cfg *config.Config, interval int64) ([]launch.PluginRef, error) {
	var meters []launch.PluginRef
	names := cfg.Energy.Meters.Names
	if cfg.Energy.Meters.Auto {
		// Meters unavailable on this host are left out here, so no worker starts them.
		var refused []discovery.Refused
		names, refused = p.sess.AutoMeters(ctx, cfg.PluginTables)
		p.findings = discovery.RefusedFindings(p.env.Logger, refused, "fix or remove the plugin, or list the meters to use in energy.meters")
	}
	for _, n := range names {
		ref, err := pluginRef(ctx, p.cat, p.sess, n, sdk.KindEnergy, cfg.PluginTable(n))
		if err != nil {
			return nil, err
		}
		if c, err := p.sess.Open(ctx, n, sdk.KindEnergy, ref.Config); err == nil {
			ref.IntervalNS = meterInterval(c.Info(), ref.Config, interval)
			ref.Unavailable = unavailableMeter(ctx, c.Meter())
		}
		meters = append(meters, ref)
	}
	if len(meters) == 0 {
		p.env.Logger.Warn("no energy plugin is installed or enabled: energy will not be measured", "searched", strings.Join(p.cat.Searched(), ", "))
	}
	return meters, nil
}

func lookup(m map[string]any, dotted string) any {
	var cur any = m
	for _, k := range strings.Split(dotted, ".") {
		t, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = t[k]
	}
	return cur
}

// loaderTokenizer tokenizes with the loader plugin, for synthetic:<n> datasets.
type loaderTokenizer struct {
	l   sdk.Loader
	ref string
}

func (t loaderTokenizer) Tokenize(ctx context.Context, texts []string) ([][]int32, error) {
	return t.l.Tokenize(ctx, t.ref, texts)
}

func (t loaderTokenizer) Detokenize(ctx context.Context, ids [][]int32) ([]string, error) {
	return t.l.Detokenize(ctx, t.ref, ids)
}

// checkContext resolves the model and refuses a workload.max_new_tokens that leaves no room for
// a prompt in the model's context, when the loader knows the context.
func checkContext(ctx context.Context, l sdk.Loader, cfg *config.Config) (*sdk.Artifact, error) {
	a, err := l.Resolve(ctx, cfg.Model.Ref)
	if err != nil {
		return nil, modelRefError(cfg.Model.Ref, err)
	}
	if want, got := cfg.Model.Precision, a.Metadata["precision"]; want != "" && want != "auto" && got != "" && got != want {
		return nil, cliutil.Usagef("model.precision = %s: the model %s stores %s weights (%s) (valid: %s, \"auto\", or a model stored at %s)",
			echo.Quote(want), echo.Quote(cfg.Model.Ref), got, a.Metadata["quant_scheme"], echo.Quote(got), want)
	}
	if n := cfg.Workload.MaxNewTokens; a.ContextLength > 0 && n >= a.ContextLength {
		return nil, cliutil.Usagef("workload.max_new_tokens = %d: the model %s has a context of %d tokens, which must hold the prompt and the new tokens (valid: 1..%d)",
			n, echo.Quote(cfg.Model.Ref), a.ContextLength, a.ContextLength-1)
	}
	return a, nil
}

// tokenizeChunk is how many prompts one Tokenize call carries: a few hundred prompts of a few
// thousand tokens stay well under gRPC's 4 MiB message limit.
const tokenizeChunk = 256

// tokenizeSample gives every text prompt of sample its token ids, tokenized once by the loader
// in the parent: the engines of every rank then receive the same ids, input tokens are counted
// with the loader's tokenizer, and no worker loads a tokenizer to count them. A prompt that
// tokenizes to nothing keeps its text alone (the engine refuses it, as it would have). A loader
// that does not implement Tokenize leaves the text to each engine's own tokenizer.
func tokenizeSample(ctx context.Context, l sdk.Loader, ref string, sample []dataset.Prompt, log hclog.Logger) error {
	var idx []int
	var texts []string
	for i, p := range sample {
		if len(p.IDs) == 0 {
			idx, texts = append(idx, i), append(texts, p.Text)
		}
	}
	for start := 0; start < len(texts); start += tokenizeChunk {
		end := min(start+tokenizeChunk, len(texts))
		toks, err := l.Tokenize(ctx, ref, texts[start:end])
		if errors.Is(err, sdk.ErrUnimplemented) {
			log.Debug("the loader does not tokenize: each engine tokenizes the prompts' text", "ref", ref)
			return nil
		}
		if err == nil && len(toks) != end-start {
			err = fmt.Errorf("the loader returned %d token lists for %d prompts", len(toks), end-start)
		}
		if err != nil {
			return fmt.Errorf("tokenize the prompts with the loader of model.ref %q: %w", ref, err)
		}
		for j, ids := range toks {
			if len(ids) > 0 {
				sample[idx[start+j]].IDs = ids
			}
		}
	}
	return nil
}

// resolvedHere is the parent's resolution of the model for workers on this host, so that they
// do not hash it again; nil (each worker resolves it) when this host's boot or the model's files
// cannot be read.
func resolvedHere(a *sdk.Artifact, env *cliutil.Factory) *launch.ResolvedModel {
	host, err := sysinfo.Default().Host()
	if err != nil || host.BootID == "" {
		env.Logger.Debug("workers will resolve the model themselves", "why", err)
		return nil
	}
	r, err := launch.NewResolvedModel(*a, host.BootID)
	if err != nil {
		env.Logger.Debug("workers will resolve the model themselves", "why", err)
		return nil
	}
	return r
}

func openDataset(ctx context.Context, l sdk.Loader, cfg *config.Config) (*dataset.Dataset, error) {
	opts := dataset.Options{Format: cfg.Workload.Format, Column: cfg.Workload.Column, Count: cfg.Workload.Prompts}
	if strings.HasPrefix(cfg.Workload.Dataset, "synthetic:") {
		opts.Tokenizer = loaderTokenizer{l: l, ref: cfg.Model.Ref}
		ds, err := dataset.Open(ctx, cfg.Workload.Dataset, opts)
		if err != nil {
			return nil, cliutil.Failed(fmt.Errorf("workload.dataset %s: %w", echo.Value(cfg.Workload.Dataset), err))
		}
		return ds, nil
	}
	ds, err := dataset.Open(ctx, cfg.Workload.Dataset, opts)
	if err != nil {
		return nil, cliutil.Usagef("workload.dataset %s: %v", echo.Value(cfg.Workload.Dataset), err)
	}
	return ds, nil
}

type slot struct {
	device  launch.DeviceSlot
	threads int
	cpus    []int
}

// deviceSlots expands launch.devices × processes_per_device into worker slots. Accelerators are
// resolved through the energy plugins' inventories (resolveDevices): each worker gets exactly the
// visibility environment its device's plugin gave.
func deviceSlots(ctx context.Context, sess *discovery.Session, cfg *config.Config, meters []launch.PluginRef) ([]slot, error) {
	per := max(1, cfg.Launch.ProcessesPerDevice)
	if cfg.Launch.Devices.IsCPU() || len(cfg.Launch.Devices) == 0 {
		cores := sysinfo.Default().UsableCPUs() // affinity and cgroup quota, as docs/config.md says
		threads := cfg.Launch.Threads
		if threads <= 0 {
			threads = cores
		}
		each := max(1, threads/per)
		var out []slot
		for i := 0; i < per; i++ {
			s := slot{device: launch.DeviceSlot{Kind: launch.DeviceCPU, Index: -1, Slot: fmt.Sprintf("cpu:%d", i), Name: "cpu"}, threads: each}
			if cfg.Launch.PinCPUs {
				for c := i * each; c < (i+1)*each && c < cores; c++ {
					s.cpus = append(s.cpus, c)
				}
			}
			out = append(out, s)
		}
		return out, nil
	}
	inv, err := deviceInventory(ctx, sess, meters)
	if err != nil {
		return nil, err
	}
	devs, err := resolveDevices(cfg.Launch.Devices, inv)
	if err != nil {
		return nil, err
	}
	var out []slot
	for _, d := range devs {
		for i := 0; i < per; i++ {
			s := launch.DeviceSlot{Kind: launch.DeviceAccelerator, Index: d.info.Index, UUID: d.info.ID, Name: d.info.Model,
				Vendor: d.info.Vendor, Meter: d.meter, Env: maps.Clone(d.info.VisibilityEnv)}
			s.Slot = fmt.Sprintf("%s:%s:%d", d.info.Vendor, d.info.ID, i)
			out = append(out, slot{device: s, threads: cfg.Launch.Threads})
		}
	}
	return out, nil
}

// deviceInventory lists the devices the energy plugins report, in the order of meters and of each
// plugin's inventory, each device once per plugin. It fails (a usage error) when none reports any.
func deviceInventory(ctx context.Context, sess *discovery.Session, meters []launch.PluginRef) ([]meterDevice, error) {
	var out []meterDevice
	var reasons []string
	for _, m := range meters {
		c, err := sess.Open(ctx, m.Name, sdk.KindEnergy, m.Config)
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("%s: %v", m.Name, err))
			continue
		}
		doms, err := c.Meter().Inventory(ctx)
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("%s: inventory: %v", m.Name, err))
			continue
		}
		seen := map[string]bool{}
		for _, d := range doms {
			if d.Device == nil {
				if d.Scope == sdk.ScopeDevice && !d.Available {
					reasons = append(reasons, fmt.Sprintf("%s: %s", m.Name, d.Reason))
				}
				continue
			}
			if !seen[d.Device.ID] {
				seen[d.Device.ID] = true
				out = append(out, meterDevice{meter: m.Name, info: *d.Device})
			}
		}
	}
	if len(out) == 0 {
		why := "no energy plugin of [energy].meters reports a device in its inventory"
		if len(reasons) > 0 {
			why = strings.Join(reasons, "; ")
		}
		return nil, cliutil.Usagef("launch.devices lists devices, but lemctl cannot find them: %s (docs/config.md, \"Devices\")", why)
	}
	return out, nil
}

// partialHint points to `lemctl aggregate --no-strict` after a failed aggregation, only when at
// least one rank saved a raw result it could aggregate.
func partialHint(err error, id string) string {
	var ce *aggregate.CheckError
	if errors.As(err, &ce) && ce.Usable > 0 {
		return fmt.Sprintf("\n(`lemctl aggregate %s --no-strict` writes a partial aggregate)", id)
	}
	return ""
}

// execute launches the workers and waits for them, then aggregates.
func (p *plan) execute(ctx context.Context, e Experiment) (*Outcome, error) {
	env := p.env
	resultsDir, _ := p.repoRef.Config["path"].(string)
	oc := &Outcome{ID: p.id, ConfigHash: p.specs[0].ConfigHash, ResultsDir: resultsDir, WorldSize: len(p.specs)}
	// The workers start their own plugins: the parent keeps only the repository's process.
	p.sess.Release(p.repoRef.Name)
	repoClient, err := p.sess.Open(ctx, p.repoRef.Name, sdk.KindRepository, p.repoRef.Config)
	if err != nil {
		return oc, openError(err)
	}
	repo := repoClient.Repository()
	manifest := &results.Manifest{SchemaVersion: results.SchemaVersion, Kind: results.KindManifest, ExperimentID: p.id,
		ConfigHash: p.specs[0].ConfigHash, State: results.StateRunning, WorldSize: len(p.specs), StartUnixNS: time.Now().UnixNano(),
		LemctlVersion: version.Version, Findings: p.findings}
	// The workers are local: they run on this host boot.
	hostID, err := sysinfo.Default().Host()
	if err != nil {
		return oc, cliutil.Failed(fmt.Errorf("identify this host: %w", err))
	}
	host := results.Host(hostID)
	// Who runs it: a running manifest whose lemctl is gone is shown as abandoned.
	manifest.LemctlPID, manifest.LemctlHost = os.Getpid(), &host
	if start, err := sysinfo.Default().ProcessStart(os.Getpid()); err == nil {
		manifest.LemctlStartTicks = start
	}
	saveManifest := func() {
		data, err := results.Encode(manifest)
		if err == nil {
			_, err = repo.SaveManifest(context.WithoutCancel(ctx), p.id, data)
		}
		if err != nil {
			env.Logger.Error("save run manifest", "error", err)
		}
	}
	launcher := &launch.Local{Executable: env.Executable, RunDir: p.runDir}
	var workers []launch.Worker
	killAll := func() {
		for _, w := range workers {
			_ = w.Kill()
			_, _ = w.Wait()
		}
	}
	if p.slurm != nil {
		ws, sl, err := p.slurm.launch(ctx, p, manifest)
		if err != nil {
			if cliutil.CodeOf(err) != cliutil.ExitUsage {
				manifest.State, manifest.Error = results.StateFailed, err.Error()
				saveManifest()
			}
			return oc, err
		}
		defer sl.Close()
		workers = ws
	}
	for _, spec := range p.specs[len(workers):] {
		w, err := launcher.Launch(ctx, spec)
		if err != nil {
			killAll()
			manifest.State, manifest.Error = results.StateFailed, err.Error()
			saveManifest()
			return oc, cliutil.Failed(err)
		}
		workers = append(workers, w)
		manifest.Ranks = append(manifest.Ranks, results.ManifestRank{Rank: spec.Rank, Host: host,
			Device: spec.Device.Result(nil),
			PID:    w.Pid(), LogPath: w.LogPath(), State: results.StateRunning})
	}
	saveManifest()
	env.Logger.Info("experiment started", "id", p.id, "workers", len(workers), "logs", p.runDir)

	prog := newProgress(env.Err, e.Progress)
	coord := &launch.Coordinator{Workers: workers, Force: e.Force, OnProgress: prog.update, OnFailure: prog.failure,
		StallTimeout: time.Duration(p.specs[0].StallTimeoutS * float64(time.Second)),
		OnEvent:      func(format string, args ...any) { env.Logger.Info(fmt.Sprintf(format, args...)) }}
	outcomes, interrupted := coord.Run(ctx)

	end := time.Now().UnixNano()
	manifest.EndUnixNS = &end
	var failed []string
	for i, oc := range outcomes {
		code := oc.ExitCode
		manifest.Ranks[i].ExitCode = &code
		switch {
		case oc.Done && code == 0:
			manifest.Ranks[i].State = results.StateCompleted
		case interrupted:
			manifest.Ranks[i].State = results.StateInterrupted
		default:
			manifest.Ranks[i].State = results.StateFailed
			where := ""
			if oc.Phase != "" {
				where = " in phase " + oc.Phase
			}
			failed = append(failed, fmt.Sprintf("rank %d (%s) failed%s: %s; log: %s", oc.Rank, manifest.Ranks[i].Device.Slot, where, oc.Error, oc.LogPath))
		}
	}
	switch {
	case interrupted:
		why := "interrupted by the user"
		if sig, ok := e.Signal(); ok {
			why = "interrupted by " + sigName(sig)
		}
		manifest.State, manifest.Error = results.StateInterrupted, why
	case len(failed) > 0:
		manifest.State, manifest.Error = results.StateFailed, strings.Join(failed, "; ")
	default:
		manifest.State = results.StateCompleted
	}
	saveManifest()
	if interrupted {
		code := cliutil.ExitInterrupted
		if sig, ok := e.Signal(); ok {
			code = 128 + int(sig)
		}
		return oc, cliutil.Exit(code, fmt.Errorf("%s: experiment %s stopped; raw results saved so far stay in %s", manifest.Error, p.id, resultsDir))
	}
	oc.Failed = failed
	if e.NoAggregate {
		return oc, nil
	}
	out, err := aggregate.Run(context.WithoutCancel(ctx), repo, p.id, aggregate.Options{LemctlVersion: version.Version, LemctlCommit: version.CommitOrUnknown()})
	if err != nil {
		msg := err.Error()
		if len(failed) > 0 {
			msg = strings.Join(failed, "\n") + "\n" + msg
		}
		return oc, cliutil.Failed(fmt.Errorf("experiment %s: %s%s", p.id, msg, partialHint(err, p.id)))
	}
	oc.Aggregated, oc.Data, oc.StoredPath = out.Aggregated, out.Data, out.Stored.Path
	return oc, nil
}

// report prints run's summary of oc on stdout (a table, or JSON with -o json) and returns the
// failure of any worker.
func report(env *cliutil.Factory, o *Options, oc *Outcome) error {
	var workersErr error
	if len(oc.Failed) > 0 {
		for _, f := range oc.Failed {
			env.Logger.Error(f)
		}
		workersErr = cliutil.Failed(fmt.Errorf("%d of %d workers failed", len(oc.Failed), oc.WorldSize))
	}
	if o.NoAggregate && o.Output == render.FormatJSON {
		if err := render.JSON(env.Out, map[string]any{"experiment_id": oc.ID, "results_dir": oc.ResultsDir, "aggregated": false}); err != nil {
			return err
		}
		return workersErr
	}
	if o.NoAggregate {
		fmt.Fprintf(env.Out, "experiment %s: raw results in %s (not aggregated: run `lemctl aggregate %s`)\n", oc.ID, oc.ResultsDir, oc.ID)
		return workersErr
	}
	if o.Output == render.FormatJSON {
		// The aggregate exactly as stored; the line naming it goes to stderr.
		if _, err := env.Out.Write(oc.Data); err != nil {
			return err
		}
		fmt.Fprintf(env.Err, "experiment %s: %s\n", oc.ID, oc.StoredPath)
		if err := writeReport(env, o, oc, env.Err); err != nil {
			return err
		}
		return workersErr
	}
	if err := resultscmd.WriteAggregated(env.Out, oc.Aggregated); err != nil {
		return err
	}
	fmt.Fprintf(env.Out, "\nexperiment %s: %s\n", oc.ID, oc.StoredPath)
	if err := writeReport(env, o, oc, env.Out); err != nil {
		return err
	}
	return workersErr
}

// writeReport writes the experiment's HTML report with --report, else says how to make it;
// either way the line names the report's path (on w: stdout beside the table, stderr beside
// JSON). The raw results, for the power timeline, come from the --results-dir repository; a
// report without them says so.
func writeReport(env *cliutil.Factory, o *Options, oc *Outcome, w io.Writer) error {
	path := reportcmd.DefaultPath(oc.ResultsDir, oc.ID)
	if !o.Report {
		_, err := fmt.Fprintf(w, "report: `lemctl report %s --results-dir %s` writes %s\n", oc.ID, oc.ResultsDir, path)
		return err
	}
	ctx := context.Background()
	e := htmlreport.Experiment{Aggregated: oc.Aggregated, AggregatedJSON: oc.Data}
	if env.Repository != nil {
		if repo, err := env.Repository(ctx); err == nil {
			if loaded, err := reportcmd.LoadExperiment(ctx, repo, oc.ID); err == nil {
				e.Raws = loaded.Raws
			}
		}
	}
	var b strings.Builder
	err := htmlreport.WriteExperiment(&b, e, htmlreport.Options{LemctlVersion: version.Version, GeneratedUnixNS: time.Now().UnixNano()})
	if err == nil {
		err = reportcmd.Save(path, []byte(b.String()))
	}
	if err != nil {
		return cliutil.Failed(fmt.Errorf("experiment %s: report: %w", oc.ID, err))
	}
	_, err = fmt.Fprintf(w, "report: %s\n", path)
	return err
}
