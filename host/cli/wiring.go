package cli

import (
	"context"
	"os"
	"path/filepath"

	"github.com/lemctl/lemctl/host/cli/configcmd"
	"github.com/lemctl/lemctl/host/cli/resultscmd"
	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/config"
	"github.com/lemctl/lemctl/host/discovery"
	"github.com/lemctl/lemctl/sdk"
)

// DefaultRepository is the repository plugin that --results-dir addresses.
const DefaultRepository = "fsstore"

func init() {
	resultscmd.OpenRepository = openRepository
	configcmd.NewConfigurer = func(env *cliutil.Env) (config.PluginConfigurer, func(), error) {
		cat, err := discovery.Discover(context.Background(), discovery.OptionsFromEnv(env.PluginDirs, env.Executable, env.Logger))
		if err != nil {
			return nil, nil, err
		}
		// A session, as a run uses: each plugin starts once even when it serves several kinds.
		sess := cat.NewSession()
		return sess, func() { sess.Close(); cat.Close() }, nil
	}
}

// openRepository starts the default repository plugin on --results-dir, which must be a
// directory: a missing one is a usage error naming it, never an empty repository.
func openRepository(ctx context.Context, env *cliutil.Env) (sdk.Repository, func(), error) {
	if fi, err := os.Stat(env.ResultsDir); err != nil || !fi.IsDir() {
		why := "not a directory"
		if err != nil {
			why = "no such directory"
		}
		return nil, nil, cliutil.Usagef("--results-dir %s: %s (results are stored there by lemctl run; pass the directory you ran with)", env.ResultsDir, why)
	}
	cat, err := discovery.Discover(ctx, discovery.OptionsFromEnv(env.PluginDirs, env.Executable, env.Logger))
	if err != nil {
		return nil, nil, err
	}
	dir, err := filepath.Abs(env.ResultsDir)
	if err != nil {
		dir = env.ResultsDir
	}
	c, err := cat.OpenConfigured(ctx, DefaultRepository, sdk.KindRepository, map[string]any{"path": dir})
	if err != nil {
		cat.Close()
		return nil, nil, err
	}
	return c.Repository(), func() { c.Close(); cat.Close() }, nil
}
