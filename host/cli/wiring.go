package cli

import (
	"context"

	"github.com/lemctl/lemctl/host/cli/configcmd"
	"github.com/lemctl/lemctl/host/cli/resultscmd"
	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/config"
	"github.com/lemctl/lemctl/sdk"
)

// Transitional: the hooks forward to the Factory until the commands take it (removed below).
func init() {
	resultscmd.OpenRepository = func(ctx context.Context, env *cliutil.Env) (sdk.Repository, func(), error) {
		repo, err := env.Repository(ctx)
		return repo, func() {}, err
	}
	configcmd.NewConfigurer = func(env *cliutil.Env) (config.PluginConfigurer, func(), error) {
		return env.Configurer(context.Background())
	}
}
