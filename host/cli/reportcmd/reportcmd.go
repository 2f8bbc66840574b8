package reportcmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/lemctl/lemctl/host/atomicfile"
	"github.com/lemctl/lemctl/host/cli/studyload"
	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/echo"
	"github.com/lemctl/lemctl/host/report"
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/study"
	"github.com/lemctl/lemctl/host/version"
	"github.com/lemctl/lemctl/sdk"
)

// Options are the command's positional and flags.
type Options struct {
	F *cliutil.Factory
	// IDs is the experiment or study id, or with Compare the two experiment ids A and B.
	IDs     []string
	Compare bool
	// Output is the file to write; "" is DefaultPath.
	Output string
}

// NewCommand builds `lemctl report`.
func NewCommand(f *cliutil.Factory) *cobra.Command { return NewCmdReport(f, nil) }

// NewCmdReport builds `lemctl report ID [-o FILE]` and `lemctl report --compare A B`; runF, when
// not nil, runs instead of reportRun (tests).
func NewCmdReport(f *cliutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{F: f}
	cmd := &cobra.Command{
		Use:   "report ID [-o FILE] | report --compare A B [-o FILE]",
		Short: "Write an experiment's, a study's or two experiments' report: one HTML file that opens offline",
		Long: `report writes one self-contained HTML page: styles, the font and the charts (SVG) inline, no
network reference and no JavaScript needed. ID is an experiment (its aggregate, and its raw
results for the power timeline) or a study (results/studies/ID/study.json); --compare A B puts
two experiments side by side with their differences. The file is results/reports/ID.html
(A-vs-B.html) under --results-dir unless -o names another. Exit codes: 0 written, 1 a result
cannot be read, 2 bad usage.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.IDs = args
			switch {
			case opts.Compare && len(args) != 2:
				return cliutil.Usagef("--compare takes two experiment ids (A B), got %d argument(s)", len(args))
			case !opts.Compare && len(args) != 1:
				return cliutil.Usagef("report takes one experiment or study id (or --compare A B), got %d argument(s)", len(args))
			}
			for _, id := range args {
				if err := checkID(id); err != nil {
					return err
				}
			}
			if runF != nil {
				return runF(opts)
			}
			return reportRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&opts.Output, "output", "o", "", "file to write (default: <results-dir>/reports/<id>.html)")
	fl.BoolVar(&opts.Compare, "compare", false, "compare two experiments: report --compare A B")
	return cmd
}

// checkID refuses an id that is not a plain name (it becomes a path).
func checkID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, `/\`) || strings.ContainsRune(id, 0) {
		return cliutil.Usagef("id %s: want an experiment or study id (a name without a path separator)", echo.Quote(id))
	}
	return nil
}

// DefaultPath is where a report of id goes in a results directory: <dir>/reports/<id>.html.
// `run` and `sweep` print it for the report they can make.
func DefaultPath(resultsDir, id string) string {
	return filepath.Join(resultsDir, "reports", id+".html")
}

func reportRun(ctx context.Context, opts *Options) error {
	f := opts.F
	out := opts.Output
	ro := report.Options{LemctlVersion: version.Version, GeneratedUnixNS: time.Now().UnixNano()}
	var page []byte
	var err error
	switch {
	case opts.Compare:
		if out == "" {
			out = DefaultPath(f.ResultsDir, opts.IDs[0]+"-vs-"+opts.IDs[1])
		}
		page, err = comparePage(ctx, f, opts.IDs[0], opts.IDs[1], ro)
	default:
		id := opts.IDs[0]
		if out == "" {
			out = DefaultPath(f.ResultsDir, id)
		}
		if study.Exists(f.ResultsDir, id) {
			s, serr := (studyload.Files{Dir: f.ResultsDir}).LoadStudy(ctx, id)
			if serr != nil {
				return serr
			}
			page, err = StudyPage(s, ro)
		} else {
			page, err = experimentPage(ctx, f, id, ro)
		}
	}
	if err != nil {
		return err
	}
	if err := Save(out, page); err != nil {
		return err
	}
	_, err = fmt.Fprintf(f.Out, "report: %s\n", out)
	return err
}

func render(write func(*strings.Builder) error) ([]byte, error) {
	var b strings.Builder
	if err := write(&b); err != nil {
		return nil, cliutil.Failed(err)
	}
	return []byte(b.String()), nil
}

// Save writes page to path (creating its directory) after checking that it references nothing
// a browser would fetch.
func Save(path string, page []byte) error {
	if refs := report.NetworkRefs(page); len(refs) > 0 {
		return cliutil.Failed(fmt.Errorf("report %s would load %q from outside the page; not written", path, refs))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return cliutil.Failed(fmt.Errorf("report: %w", err))
	}
	if err := atomicfile.Write(path, page, 0o644); err != nil {
		return cliutil.Failed(fmt.Errorf("write report %s: %w", path, err))
	}
	return nil
}

// LoadExperiment reads an experiment's aggregate and whatever raw results the repository holds.
func LoadExperiment(ctx context.Context, repo sdk.Repository, id string) (*report.Experiment, error) {
	data, err := repo.LoadAggregated(ctx, id)
	switch {
	case errors.Is(err, sdk.ErrNotFound):
		return nil, cliutil.Failed(fmt.Errorf("%s is neither a study nor an aggregated experiment (run `lemctl aggregate %s` first): %w", id, id, err))
	case errors.Is(err, sdk.ErrInvalidArgument):
		return nil, cliutil.Usage(fmt.Errorf("experiment id: %w", err))
	case err != nil:
		return nil, cliutil.Failed(fmt.Errorf("load the aggregate of %s: %w", id, err))
	}
	agg, err := results.DecodeAggregated(data)
	if err != nil {
		return nil, cliutil.Failed(fmt.Errorf("the aggregate of %s: %w", id, err))
	}
	e := &report.Experiment{Aggregated: agg, AggregatedJSON: data}
	entries, err := repo.ListRaw(ctx, id)
	if err != nil && !errors.Is(err, sdk.ErrNotFound) {
		return nil, cliutil.Failed(fmt.Errorf("list the raw results of %s: %w", id, err))
	}
	// Loaded and decoded GOMAXPROCS at a time, as aggregation loads them: decoding 1,000 raw
	// results is most of a large report's time.
	e.Raws = make([]*results.Raw, len(entries))
	errs := make([]error, len(entries))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(entries)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(entries); i = int(next.Add(1) - 1) {
				rank := entries[i].Rank
				raw, err := repo.LoadRaw(ctx, id, rank)
				if err != nil {
					errs[i] = cliutil.Failed(fmt.Errorf("load %s rank %d: %w", id, rank, err))
					continue
				}
				if e.Raws[i], err = results.DecodeRaw(raw); err != nil {
					errs[i] = cliutil.Failed(fmt.Errorf("%s rank %d: %w", id, rank, err))
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return e, nil
}

// ExperimentPage renders an experiment's page from the repository.
func ExperimentPage(ctx context.Context, repo sdk.Repository, id string, o report.Options) ([]byte, error) {
	e, err := LoadExperiment(ctx, repo, id)
	if err != nil {
		return nil, err
	}
	return render(func(b *strings.Builder) error { return report.WriteExperiment(b, *e, o) })
}

func experimentPage(ctx context.Context, f *cliutil.Factory, id string, o report.Options) ([]byte, error) {
	repo, err := f.Repository(ctx)
	if err != nil {
		return nil, err
	}
	return ExperimentPage(ctx, repo, id, o)
}

func comparePage(ctx context.Context, f *cliutil.Factory, a, b string, o report.Options) ([]byte, error) {
	repo, err := f.Repository(ctx)
	if err != nil {
		return nil, err
	}
	ea, err := LoadExperiment(ctx, repo, a)
	if err != nil {
		return nil, err
	}
	eb, err := LoadExperiment(ctx, repo, b)
	if err != nil {
		return nil, err
	}
	return render(func(w *strings.Builder) error {
		return report.WriteCompare(w, report.Comparison{A: ea, B: eb, Comparer: Comparer{}}, o)
	})
}
