package cliutil

import (
	"context"
	"io"

	"github.com/hashicorp/go-hclog"

	"github.com/lemctl/lemctl/host/config"
	"github.com/lemctl/lemctl/host/discovery"
	"github.com/lemctl/lemctl/sdk"
)

// Factory is what every command gets from the root, as GitHub CLI's cmdutil.Factory: the
// streams, the logger, the global flags and the things that are costly to make, the plugin
// catalog and the results repository, made lazily on first use and at most once per process.
// host/cli builds the one Factory of a process (and closes what it made at exit); a test builds
// its own with the func fields it needs.
type Factory struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
	// Logger logs to Err; the root sets its level from -v/-q before a command runs (until then it
	// discards, so shell completion stays quiet).
	Logger hclog.Logger
	// Executable is the path of the running lemctl binary (for <dir of lemctl>/plugins and the
	// workers of a run).
	Executable string
	// PluginDirs are the --plugin-dir flags, in order.
	PluginDirs []string
	// ResultsDir is --results-dir.
	ResultsDir string

	// Catalog returns the process's plugin catalog: discovery runs on the first call and never
	// again. lockFile, when not "", is an explicit lock for every directory (`plugins list|describe
	// --lock`); a later call asking for another lock than the first is an error. Its error is
	// discovery's (a bad --plugin-dir or lock file), unwrapped: each command maps it.
	Catalog func(ctx context.Context, lockFile string) (*discovery.Catalog, error)
	// Repository returns the results repository on ResultsDir (the repository plugin), opened on
	// the first call. A ResultsDir that is not a directory is a usage error (exit 2) naming it;
	// any other error is an *ExitError too.
	Repository func(ctx context.Context) (sdk.Repository, error)
	// Configurer returns what checks plugin tables with the installed plugins (a session of the
	// catalog: each plugin starts once) and the function that releases what it started. Nil: the
	// tables are not checked.
	Configurer func(ctx context.Context) (config.PluginConfigurer, func(), error)
}
