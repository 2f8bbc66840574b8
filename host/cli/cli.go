// Package cli is lemctl's command line: it builds the one cliutil.Factory of the process (the
// only place that runs plugin discovery or opens the results repository), the command tree on
// it, maps errors to exit codes in one place and keeps results on stdout and logs on stderr.
// cmd/lemctl/main.go only calls Run. It must never keep state in package variables.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/lemctl/lemctl/host/cli/aggregatecmd"
	"github.com/lemctl/lemctl/host/cli/comparecmd"
	"github.com/lemctl/lemctl/host/cli/configcmd"
	"github.com/lemctl/lemctl/host/cli/datasetscmd"
	"github.com/lemctl/lemctl/host/cli/frontiercmd"
	"github.com/lemctl/lemctl/host/cli/generatecmd"
	"github.com/lemctl/lemctl/host/cli/measurecmd"
	"github.com/lemctl/lemctl/host/cli/modelcmd"
	"github.com/lemctl/lemctl/host/cli/pluginscmd"
	"github.com/lemctl/lemctl/host/cli/reportcmd"
	"github.com/lemctl/lemctl/host/cli/resultscmd"
	"github.com/lemctl/lemctl/host/cli/runcmd"
	"github.com/lemctl/lemctl/host/cli/servecmd"
	"github.com/lemctl/lemctl/host/cli/sweepcmd"
	"github.com/lemctl/lemctl/host/cli/workercmd"
	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/echo"
	"github.com/lemctl/lemctl/host/version"
)

// Run executes lemctl with args (without the program name) and returns the process exit code.
func Run(ctx context.Context, in io.Reader, out, errw io.Writer, args []string) int {
	f, closeFactory := newFactory(in, out, errw)
	defer closeFactory()
	root := newRoot(f)
	root.SetArgs(args)
	root.SetIn(in)
	root.SetOut(out)
	root.SetErr(errw)
	err := root.ExecuteContext(ctx)
	code := cliutil.CodeOf(err)
	if err != nil {
		var ee *cliutil.ExitError
		if !errors.As(err, &ee) {
			// cobra's own errors (unknown command, bad flag) are usage errors.
			if isCobraUsageError(err) {
				code = cliutil.ExitUsage
			}
		}
		if msg := err.Error(); msg != "" && !(errors.As(err, &ee) && ee.Err == nil) {
			fmt.Fprintln(errw, "lemctl: "+echo.Lines(msg)) // no line of echoed input runs to megabytes
		}
	}
	return code
}

// newRoot builds the command tree on f; every command reads what it needs from f when it runs.
func newRoot(f *cliutil.Factory) *cobra.Command {
	var verbose, quiet bool
	root := &cobra.Command{
		Use:           "lemctl",
		Short:         "Measure what LLM inference costs: energy, throughput, latency, FLOPs",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			level := hclog.Info
			switch {
			case verbose:
				level = hclog.Debug
			case quiet:
				level = hclog.Warn
			}
			f.Logger = hclog.New(&hclog.LoggerOptions{Name: "lemctl", Level: level, Output: f.Err})
			return nil
		},
	}
	root.PersistentFlags().BoolVarP(&verbose, "verbose", "v", false, "log debug detail to stderr")
	root.PersistentFlags().BoolVarP(&quiet, "quiet", "q", false, "log only warnings and errors")
	root.PersistentFlags().StringArrayVar(&f.PluginDirs, "plugin-dir", nil, "directory of lem-plugin-* binaries; wins over $LEM_PLUGIN_PATH and <dir of lemctl>/plugins (repeatable)")
	root.PersistentFlags().StringVar(&f.ResultsDir, "results-dir", "results", "results repository path for run, aggregate and results")
	root.SetFlagErrorFunc(cliutil.FlagError)

	root.AddCommand(newVersionCmd(f))
	for _, add := range commands {
		root.AddCommand(add(f))
	}
	return root
}

// commands lists the constructors of lemctl's subcommands; each lives in its own package.
var commands = []func(*cliutil.Factory) *cobra.Command{
	runcmd.NewCommand,
	sweepcmd.NewCommand,
	measurecmd.NewCommand,
	aggregatecmd.NewCommand,
	resultscmd.NewCommand,
	reportcmd.NewCommand,
	comparecmd.NewCommand,
	frontiercmd.NewCommand,
	configcmd.NewCommand,
	datasetscmd.NewCommand,
	generatecmd.NewCommand,
	servecmd.NewCommand,
	pluginscmd.NewCommand,
	modelcmd.NewCommand,
	workercmd.NewCommand,
}

func newVersionCmd(f *cliutil.Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the lemctl version and commit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(f.Out, "lemctl %s (commit %s)\n", version.Version, version.CommitOrUnknown())
			return err
		},
	}
}

func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires at least", "requires at most", "invalid argument", "flag needs an argument", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
