package aggregatecmd

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/lemctl/lemctl/host/aggregate"
	"github.com/lemctl/lemctl/host/cli/resultscmd"
	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/cliutil/render"
	"github.com/lemctl/lemctl/host/version"
	"github.com/lemctl/lemctl/sdk"
)

// Options are the command's positional and flags.
type Options struct {
	F          *cliutil.Factory
	Exp        string
	Force      bool
	NoStrict   bool
	AllowMixed bool
	Output     string
}

// NewCommand builds `lemctl aggregate`.
func NewCommand(f *cliutil.Factory) *cobra.Command { return NewCmdAggregate(f, nil) }

// NewCmdAggregate builds `lemctl aggregate EXP`; runF, when not nil, runs instead of
// aggregateRun (tests).
func NewCmdAggregate(f *cliutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{F: f}
	cmd := &cobra.Command{
		Use:   "aggregate EXP",
		Short: "Aggregate an experiment's raw results again (late aggregation; --force replaces the aggregate)",
		Long: `Aggregate reads every raw result of EXP from the results repository (--results-dir), checks
that the run is complete (a completion marker per rank, ranks 0..N-1, checksums, unique device
slots, concurrent windows, one config/engine/model) and writes aggregated/EXP.json.

Strict by default: any failed check is an error (exit 1) and nothing is written. --no-strict
writes a partial aggregate (partial: true, partial_reasons, an error finding per failed check)
and still exits 1. --allow-mixed turns a mixed config hash, engine or model into a warning.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Exp = args[0]
			if runF != nil {
				return runF(opts)
			}
			return aggregateRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&opts.Force, "force", false, "replace an existing aggregate")
	fl.BoolVar(&opts.NoStrict, "no-strict", false, "write a partial aggregate when completeness checks fail (exit 1)")
	fl.BoolVar(&opts.AllowMixed, "allow-mixed", false, "accept a mixed config hash, engine or model, with a warning")
	render.OutputVar(cmd, &opts.Output)
	return cmd
}

func aggregateRun(ctx context.Context, o *Options) error {
	env, exp := o.F, o.Exp
	repo, err := env.Repository(ctx)
	if err != nil {
		return err
	}
	out, err := aggregate.Run(ctx, repo, exp, aggregate.Options{
		NoStrict: o.NoStrict, AllowMixed: o.AllowMixed, Force: o.Force,
		LemctlVersion: version.Version, LemctlCommit: version.CommitOrUnknown(),
		ShownState: resultscmd.ShownState,
	})
	var ce *aggregate.CheckError
	switch {
	case errors.As(err, &ce):
		return cliutil.Failed(err)
	case errors.Is(err, sdk.ErrInvalidArgument):
		return cliutil.Usage(fmt.Errorf("aggregate: experiment id: %w", err))
	case err != nil && ctx.Err() != nil:
		return cliutil.Exit(cliutil.ExitInterrupted, err)
	case err != nil:
		return cliutil.Failed(err)
	}
	if env.Logger != nil {
		env.Logger.Info("aggregate written", "experiment", exp, "path", out.Stored.Path, "sha256", out.Stored.SHA256)
	}
	if o.Output == render.FormatJSON {
		if _, err := env.Out.Write(out.Data); err != nil {
			return err
		}
	} else if err := resultscmd.WriteAggregated(env.Out, out.Aggregated); err != nil {
		return err
	}
	if out.Aggregated.Partial {
		return cliutil.Failed(fmt.Errorf("aggregate %s is partial (%d failed check(s)); written to %s", exp, len(out.Aggregated.PartialReasons), out.Stored.Path))
	}
	return nil
}
