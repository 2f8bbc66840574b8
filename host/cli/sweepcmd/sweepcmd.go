// Package sweepcmd is `lemctl sweep STUDY.toml`: validate every point of a study, print the
// plan, run each point × cycle as an ordinary experiment through runcmd.Measure (the run path
// of `lemctl run`), keep the study's manifest and aggregate under <results dir>/studies/<id>/
// after every experiment, and continue an unfinished study with --resume. It never measures
// anything itself and never rewrites an experiment's stored results.
package sweepcmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/lemctl/lemctl/host/cli/reportcmd"
	"github.com/lemctl/lemctl/host/cli/resultscmd"
	"github.com/lemctl/lemctl/host/cli/runcmd"
	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/cliutil/render"
	"github.com/lemctl/lemctl/host/config"
	"github.com/lemctl/lemctl/host/echo"
	htmlreport "github.com/lemctl/lemctl/host/report"
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/study"
	"github.com/lemctl/lemctl/host/version"
)

// Options are sweep's positional and flags.
type Options struct {
	F *cliutil.Factory
	// File is the study file ("" with --resume).
	File string
	// Resume is the id of the study to continue.
	Resume   string
	DryRun   bool
	Progress string // "text", "json" or "quiet"
	Output   string // "table" or "json"
	// Report writes the study's HTML report (lemctl report STUDY_ID) at the end.
	Report bool
}

// NewCommand builds `lemctl sweep`.
func NewCommand(f *cliutil.Factory) *cobra.Command { return NewCmdSweep(f, nil) }

// NewCmdSweep builds `lemctl sweep STUDY.toml | --resume STUDY_ID`; runF, when not nil, runs
// instead of runSweep (tests: the options as parsed, nothing started).
func NewCmdSweep(f *cliutil.Factory, runF func(*Options) error) *cobra.Command {
	o := &Options{F: f}
	cmd := &cobra.Command{
		Use:   "sweep STUDY.toml | --resume STUDY_ID",
		Short: "Run a study: a base experiment over a grid (or list) of settings, several cycles each",
		Long: "sweep validates every point of the study file (all errors at once), prints the plan, then runs\n" +
			"each point × cycle as an ordinary experiment and keeps the study under <results dir>/studies/<id>/\n" +
			"(docs/studies.md). --resume STUDY_ID runs only the point × cycles not yet completed.\n" +
			"Exit codes: 0 ok, 1 an experiment failed, 2 bad usage or study, 130 interrupted (resumable).",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Progress != "text" && o.Progress != "json" && o.Progress != "quiet" {
				return cliutil.Usagef("--progress %s: valid values are text, json, quiet", echo.Quote(o.Progress))
			}
			if len(args) == 1 {
				o.File = args[0]
			}
			switch {
			case o.File == "" && o.Resume == "":
				return cliutil.Usagef("sweep needs a study file (lemctl sweep STUDY.toml) or --resume STUDY_ID")
			case o.File != "" && o.Resume != "":
				return cliutil.Usagef("give a study file or --resume %s, not both (a resumed study keeps its own study file)", o.Resume)
			}
			if runF != nil {
				return runF(o)
			}
			return runSweep(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Resume, "resume", "", "continue the study STUDY_ID: run only the point × cycles not completed")
	fl.BoolVar(&o.DryRun, "dry-run", false, "validate every point and print the plan; run nothing")
	fl.StringVar(&o.Progress, "progress", "text", "progress on stderr: text, json (one JSON object per line) or quiet")
	fl.BoolVar(&o.Report, "report", false, "write the study's HTML report (results/reports/<study id>.html) at the end")
	render.OutputVar(cmd, &o.Output)
	return cmd
}

// point is a validated point: its settings and the config hash of its experiment.
type point struct {
	study.Point
	hash string
	// meters are the energy meters the point's experiment selects (the thermal wait reads them).
	meters meterSelection
}

// validate loads the base experiment with each point's settings, checking the plugin tables,
// and returns the points with their config hashes and the results directory their experiments
// go to. Every problem of every point is returned at once (exit 2).
func validate(ctx context.Context, f *cliutil.Factory, sf *study.File) ([]point, string, error) {
	cat, err := f.Catalog(ctx, "")
	if err != nil {
		return nil, "", cliutil.Usage(err)
	}
	sess := cat.NewSession()
	defer sess.Close()
	pts := sf.PointList()
	out := make([]point, len(pts))
	// Messages with the points they came from, in first-seen order.
	var msgs []string
	byMsg := map[string][]string{}
	add := func(msg, id string) {
		if _, ok := byMsg[msg]; !ok {
			msgs = append(msgs, msg)
		}
		byMsg[msg] = append(byMsg[msg], id)
	}
	resultsDir := ""
	byHash := map[string]string{}
	for i, p := range pts {
		out[i].Point = p
		var vals []config.Setting
		for _, s := range p.Settings {
			vals = append(vals, config.Setting{Key: s.Key, Value: s.Value, Source: fmt.Sprintf("%s point %s", sf.Path, p.ID)})
		}
		cfg, err := config.LoadFile(ctx, sf.BasePath, config.Options{Overrides: config.Overrides{Values: vals}, Configurer: sess, ResultsDir: f.ResultsDir})
		if err != nil {
			var errs config.Errors
			if errors.As(err, &errs) {
				for _, e := range errs {
					add(e.Error(), p.ID)
				}
			} else {
				add(err.Error(), p.ID)
			}
			continue
		}
		h, err := config.Hash(cfg)
		if err != nil {
			return nil, "", cliutil.Failed(err)
		}
		out[i].hash = h
		out[i].meters = selectionOf(cfg)
		if prev, dup := byHash[h]; dup {
			add(fmt.Sprintf("%s: point %s gives the same experiment as point %s (config hash %s…): a point is run cycles times already", sf.Path, p.ID, prev, h[:12]), p.ID)
		}
		byHash[h] = p.ID
		dir, _ := cfg.PluginTable(cfg.Repository.Plugin)["path"].(string)
		if resultsDir == "" {
			resultsDir = dir
		} else if dir != resultsDir {
			add(fmt.Sprintf("%s: point %s stores its results in %s, other points in %s: a study's experiments share one repository", sf.Path, p.ID, echo.Quote(dir), echo.Quote(resultsDir)), p.ID)
		}
	}
	if len(msgs) > 0 {
		lines := make([]string, 0, len(msgs))
		for _, m := range msgs {
			ids := byMsg[m]
			if len(ids) == len(pts) || strings.Contains(m, " point "+ids[0]) {
				lines = append(lines, m)
			} else {
				lines = append(lines, fmt.Sprintf("point %s: %s", strings.Join(ids, ", "), m))
			}
		}
		return nil, "", cliutil.Usage(fmt.Errorf("%d error(s) in study %s (base %s):\n%s", len(lines), sf.Path, sf.BasePath, strings.Join(lines, "\n")))
	}
	return out, resultsDir, nil
}

// planView is the plan as `--dry-run -o json` prints it.
type planView struct {
	StudyFile string  `json:"study_file"`
	Base      string  `json:"base"`
	Cycles    int     `json:"cycles"`
	Order     string  `json:"order"`
	Seed      int64   `json:"seed"`
	GapS      float64 `json:"gap_s"`
	// ThermalToleranceC and ThermalMaxWaitS bound the thermal wait after each gap.
	ThermalToleranceC float64      `json:"thermal_tolerance_c"`
	ThermalMaxWaitS   float64      `json:"thermal_max_wait_s"`
	ResultsDir        string       `json:"results_dir"`
	Points            []pointView  `json:"points"`
	Schedule          []study.Slot `json:"schedule"`
	Experiments       int          `json:"experiments"`
	// ToRun is the number of experiments still to run (fewer than Experiments on resume).
	ToRun int `json:"to_run"`
}

type pointView struct {
	ID         string         `json:"id"`
	Settings   map[string]any `json:"settings"`
	ConfigHash string         `json:"config_hash"`
}

func writePlan(f *cliutil.Factory, toStdout bool, sf *study.File, pts []point, sched []study.Slot, toRun int, resultsDir string, asJSON bool) error {
	pv := planView{StudyFile: sf.Path, Base: sf.BasePath, Cycles: sf.Cycles, Order: sf.Order, Seed: sf.Seed, GapS: sf.GapS, ResultsDir: resultsDir,
		ThermalToleranceC: sf.ThermalToleranceC, ThermalMaxWaitS: sf.ThermalMaxWaitS, Schedule: sched, Experiments: len(sched), ToRun: toRun}
	for _, p := range pts {
		pv.Points = append(pv.Points, pointView{ID: p.ID, Settings: p.SettingsMap(), ConfigHash: p.hash})
	}
	if asJSON {
		return render.JSON(f.Out, pv)
	}
	out := f.Err
	if toStdout {
		out = f.Out
	}
	fmt.Fprintf(out, "study %s: base %s, %d points × %d cycles = %d experiments (%d to run), order %s", sf.Path, sf.BasePath, len(pts), sf.Cycles, len(sched), toRun, sf.Order)
	if sf.Order == study.OrderShuffled {
		fmt.Fprintf(out, " (seed %d)", sf.Seed)
	}
	fmt.Fprintf(out, ", gap %g s", sf.GapS)
	if sf.ThermalMaxWaitS > 0 {
		fmt.Fprintf(out, " then a thermal wait (within %g °C of the reference, at most %g s)", sf.ThermalToleranceC, sf.ThermalMaxWaitS)
	}
	fmt.Fprintln(out)
	rows := make([][]string, 0, len(pts))
	for _, p := range pts {
		rows = append(rows, []string{p.ID, p.Label(), p.hash[:12]})
	}
	return render.Table(out, []string{"POINT", "SETTINGS", "CONFIG HASH"}, rows)
}

func runSweep(parent context.Context, o *Options) error {
	f := o.F
	var (
		sf   *study.File
		text []byte
		m    *study.Manifest
		err  error
	)
	if o.Resume != "" {
		if err := study.CheckID(o.Resume); err != nil {
			return cliutil.Usage(err)
		}
		m, err = study.LoadManifest(f.ResultsDir, o.Resume)
		if errors.Is(err, os.ErrNotExist) {
			return cliutil.Usagef("--resume %s: no such study in %s (--results-dir; `lemctl results list` lists the studies)", o.Resume, f.ResultsDir)
		}
		if err != nil {
			return cliutil.Failed(fmt.Errorf("--resume %s: %w", o.Resume, err))
		}
		sf, err = study.Parse(m.StudyFile, m.StudyDir, []byte(m.StudyTOML))
		if err != nil {
			return cliutil.Usage(fmt.Errorf("study %s: its study file as stored: %w", o.Resume, err))
		}
	} else {
		sf, text, err = study.ReadFile(o.File)
		if err != nil {
			return cliutil.Usage(err)
		}
	}
	ctx := parent
	pts, resultsDir, err := validate(ctx, f, sf)
	if err != nil {
		return err
	}
	if resultsDir != "" && !samePath(resultsDir, f.ResultsDir) && o.Resume == "" {
		// The study lives beside its experiments, in the repository they go to.
		f.Logger.Info("the base experiment sets repository.path: the study is stored there", "results_dir", resultsDir)
		f.ResultsDir = resultsDir
	}
	if resultsDir == "" {
		resultsDir = f.ResultsDir
	}
	sched := study.Schedule(len(pts), sf.Cycles, sf.Order, sf.Seed)
	hashes := map[string]string{}
	for _, p := range pts {
		hashes[p.ID] = p.hash
	}
	if m == nil {
		abs := sf.Dir
		m = &study.Manifest{SchemaVersion: study.SchemaVersion, Kind: study.KindManifest, StudyID: runcmd.NewExperimentID(sf.Name, time.Now()),
			StudyFile: sf.Path, StudyDir: abs, StudyTOML: string(text), Schedule: sched, Runs: []study.Run{}, LemctlVersion: version.Version}
		for _, p := range pts {
			m.Points = append(m.Points, p.Point)
		}
	} else {
		for _, p := range pts {
			if old, ok := m.ConfigHashes[p.ID]; ok && old != p.hash {
				f.Logger.Warn("the point's experiment changed since the study started (the base file was edited?): its completed cycles no longer count and run again",
					"point", p.ID, "was", old[:12], "now", p.hash[:12])
			}
		}
		m.Resumed++
	}
	m.ConfigHashes = hashes
	done := func(s study.Slot) bool { return m.Completed(pts[s.Point].ID, sf.Cycles)[s.Cycle-1] != "" }
	var todo []study.Slot
	for _, s := range sched {
		if !done(s) {
			todo = append(todo, s)
		}
	}
	if o.DryRun {
		return writePlan(f, true, sf, pts, sched, len(todo), resultsDir, o.Output == render.FormatJSON)
	}
	if err := writePlan(f, false, sf, pts, sched, len(todo), resultsDir, false); err != nil {
		return err
	}
	if o.Resume != "" {
		fmt.Fprintf(f.Err, "resuming study %s: %d of %d experiments already complete\n", m.StudyID, len(sched)-len(todo), len(sched))
	}
	return execute(parent, o, sf, m, pts, todo, resultsDir)
}

// execute runs the slots still to do, saving the manifest and the aggregate after each.
func execute(parent context.Context, o *Options, sf *study.File, m *study.Manifest, pts []point, todo []study.Slot, resultsDir string) error {
	f := o.F
	// First SIGINT, SIGTERM or SIGHUP: the running experiment stops gracefully (its workers are
	// cleaned up) and the sweep stops after it; a second: the workers are stopped at once.
	ctx, st, stopWatch := runcmd.WatchSignals(parent)
	defer stopWatch()

	aggs := map[string]*results.Aggregated{}
	load := func(exp string) (*results.Aggregated, error) {
		if a, ok := aggs[exp]; ok {
			return a, nil
		}
		repo, err := f.Repository(context.WithoutCancel(ctx))
		if err != nil {
			return nil, err
		}
		data, err := repo.LoadAggregated(context.WithoutCancel(ctx), exp)
		if err != nil {
			return nil, fmt.Errorf("load the aggregate of %s: %w", exp, err)
		}
		a, err := results.DecodeAggregated(data)
		if err != nil {
			return nil, fmt.Errorf("the aggregate of %s: %w", exp, err)
		}
		aggs[exp] = a
		return a, nil
	}
	var stored []byte
	save := func() error {
		if err := study.SaveManifest(resultsDir, m); err != nil {
			return cliutil.Failed(fmt.Errorf("save the study manifest: %w", err))
		}
		a, err := study.Build(m, sf, load)
		if err != nil {
			return cliutil.Failed(fmt.Errorf("aggregate study %s: %w", m.StudyID, err))
		}
		data, _, err := study.Save(resultsDir, a)
		if err != nil {
			return cliutil.Failed(fmt.Errorf("save study %s: %w", m.StudyID, err))
		}
		stored = data
		return nil
	}
	finish := func(state, why string) error {
		m.State, m.Error = state, why
		end := time.Now().UnixNano()
		m.EndUnixNS = &end
		return save()
	}
	if m.StartUnixNS == 0 {
		m.StartUnixNS = time.Now().UnixNano()
	}
	m.State, m.Error, m.EndUnixNS = results.StateRunning, "", nil
	if err := save(); err != nil {
		return err
	}
	fmt.Fprintf(f.Err, "study %s: %s\n", m.StudyID, study.Dir(resultsDir, m.StudyID))

	var failed []string
	// The thermal wait reads the meters of the first point to run, for the reference and after
	// every gap (docs/studies.md, "Gap and thermal wait").
	var ref map[string]float64
	var thermo openFunc
	if len(todo) > 1 {
		thermo = meterOpener(f, pts[todo[0].Point].meters)
		ref = thermalReference(ctx, f, sf, m, thermo)
	}
	start := time.Now()
	for i, s := range todo {
		var wait *study.ThermalWait
		if i > 0 && sf.GapS > 0 {
			select {
			case <-time.After(time.Duration(sf.GapS * float64(time.Second))):
			case <-ctx.Done():
			}
		}
		if i > 0 && len(ref) > 0 && ctx.Err() == nil {
			wait = thermalWait(ctx, f, sf, thermo, ref)
		}
		if ctx.Err() != nil {
			return interrupted(f, m, st, finish, nil)
		}
		p := pts[s.Point]
		progress(f, o.Progress, m.StudyID, i, len(todo), p, s.Cycle, sf.Cycles, start)
		var vals []config.Setting
		for _, x := range p.Settings {
			vals = append(vals, config.Setting{Key: x.Key, Value: x.Value, Source: fmt.Sprintf("%s point %s", sf.Path, p.ID)})
		}
		run := study.Run{Point: p.ID, Cycle: s.Cycle, ConfigHash: p.hash, StartUnixNS: time.Now().UnixNano(), ThermalWait: wait}
		oc, err := runcmd.Measure(ctx, f, runcmd.Experiment{File: sf.BasePath, Overrides: config.Overrides{Values: vals},
			Progress: o.Progress, Force: st.Force, Signal: st.Signal})
		run.EndUnixNS = time.Now().UnixNano()
		if oc != nil && oc.Submitted {
			// The experiment went to Slurm as a job of its own, which the sweep cannot follow.
			oc, err = nil, cliutil.Usagef("point %s cycle %d: launch.slurm.submit = true submits each experiment as a job of its own, which a sweep cannot follow; run `lemctl sweep` inside one allocation (salloc or an sbatch script) with launch.slurm.submit = false (docs/slurm.md)", p.ID, s.Cycle)
		}
		if oc != nil {
			run.ExperimentID = oc.ID
			if oc.ConfigHash != p.hash {
				// The base file changed under the sweep: the experiment is not this point's.
				err = errors.Join(err, cliutil.Usagef("point %s cycle %d: experiment %s has config hash %s, the point %s (was the base file edited during the sweep?)", p.ID, s.Cycle, oc.ID, oc.ConfigHash, p.hash))
			}
		}
		switch {
		case err == nil:
			run.State = results.StateCompleted
			aggs[oc.ID] = oc.Aggregated
			if len(oc.Failed) > 0 {
				f.Logger.Warn("experiment aggregated without its failed workers", "experiment", oc.ID, "failed", strings.Join(oc.Failed, "; "))
			}
		case ctx.Err() != nil:
			run.State, run.Error = results.StateInterrupted, err.Error()
			m.Runs = append(m.Runs, run)
			return interrupted(f, m, st, finish, err)
		default:
			run.State, run.Error = results.StateFailed, err.Error()
			msg := fmt.Sprintf("point %s cycle %d: %v", p.ID, s.Cycle, err)
			failed = append(failed, msg)
			f.Logger.Error(msg)
		}
		m.Runs = append(m.Runs, run)
		if err != nil && cliutil.CodeOf(err) == cliutil.ExitUsage {
			// A configuration the plugins refuse now stops the study: the next points would too.
			if ferr := finish(results.StateFailed, msg(failed)); ferr != nil {
				return ferr
			}
			return cliutil.Usage(fmt.Errorf("study %s stopped: %s\n(fix it, then `lemctl sweep --resume %s`)", m.StudyID, msg(failed), m.StudyID))
		}
		if err := save(); err != nil {
			return err
		}
	}
	state := results.StateCompleted
	if len(failed) > 0 {
		state = results.StateFailed
	}
	if err := finish(state, msg(failed)); err != nil {
		return err
	}
	a, _, err := study.Load(resultsDir, m.StudyID)
	if err != nil {
		return cliutil.Failed(err)
	}
	if o.Output == render.FormatJSON {
		if _, err := f.Out.Write(stored); err != nil {
			return err
		}
		if err := studyReport(f.Err, o.Report, resultsDir, a); err != nil {
			return err
		}
	} else {
		if err := resultscmd.WriteStudy(f.Out, a); err != nil {
			return err
		}
		fmt.Fprintf(f.Out, "\nstudy %s: %s\n", m.StudyID, study.Dir(resultsDir, m.StudyID))
		if err := studyReport(f.Out, o.Report, resultsDir, a); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		return cliutil.Failed(fmt.Errorf("%d experiment(s) of study %s failed (`lemctl sweep --resume %s` runs them again):\n%s", len(failed), m.StudyID, m.StudyID, msg(failed)))
	}
	return nil
}

// studyReport writes the study's HTML report with --report (write), else says how to make it;
// either way the line names the report's path (on w: stdout beside the table, stderr beside
// JSON), as `lemctl run` does for an experiment. The page is `lemctl report STUDY_ID`'s.
func studyReport(w io.Writer, write bool, resultsDir string, a *study.Aggregate) error {
	path := reportcmd.DefaultPath(resultsDir, a.StudyID)
	if !write {
		_, err := fmt.Fprintf(w, "report: `lemctl report %s --results-dir %s` writes %s\n", a.StudyID, resultsDir, path)
		return err
	}
	page, err := reportcmd.StudyPage(a, htmlreport.Options{LemctlVersion: version.Version, GeneratedUnixNS: time.Now().UnixNano()})
	if err == nil {
		err = reportcmd.Save(path, page)
	}
	if err != nil {
		return cliutil.Failed(fmt.Errorf("study %s: report: %w", a.StudyID, err))
	}
	_, err = fmt.Fprintf(w, "report: %s\n", path)
	return err
}

// samePath reports whether a and b name the same path (relative paths from the current directory).
func samePath(a, b string) bool {
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && aa == bb
}

func msg(failed []string) string { return strings.Join(failed, "\n") }

// interrupted records the study as interrupted and returns the exit error (128 + the signal).
func interrupted(f *cliutil.Factory, m *study.Manifest, st *runcmd.Signals, finish func(string, string) error, cause error) error {
	why := "interrupted by the user"
	code := cliutil.ExitInterrupted
	if sig, ok := st.Signal(); ok {
		why = "interrupted by " + unix.SignalName(sig)
		code = 128 + int(sig)
	}
	if err := finish(results.StateInterrupted, why); err != nil {
		return err
	}
	detail := ""
	if cause != nil {
		detail = " (" + firstLine(cause.Error()) + ")"
	}
	return cliutil.Exit(code, fmt.Errorf("%s: study %s stopped%s; `lemctl sweep --resume %s` runs the rest", why, m.StudyID, detail, m.StudyID))
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// progress says which experiment of the sweep starts, with the ETA from the mean duration of
// those done so far.
func progress(f *cliutil.Factory, mode, id string, i, n int, p point, cycle, cycles int, start time.Time) {
	if mode == "quiet" {
		return
	}
	eta := -1.0
	if i > 0 {
		eta = time.Since(start).Seconds() / float64(i) * float64(n-i)
	}
	if mode == "json" {
		b, _ := json.Marshal(map[string]any{"study": id, "experiment": i + 1, "of": n, "point": p.ID, "settings": p.SettingsMap(),
			"cycle": cycle, "cycles": cycles, "eta_s": eta})
		fmt.Fprintln(f.Err, string(b))
		return
	}
	etaS := "unknown"
	if eta >= 0 {
		etaS = time.Duration(eta * float64(time.Second)).Round(time.Second).String()
	}
	fmt.Fprintf(f.Err, "sweep: experiment %d/%d: point %s (%s) cycle %d/%d, ETA %s\n", i+1, n, p.ID, p.Label(), cycle, cycles, etaS)
}
