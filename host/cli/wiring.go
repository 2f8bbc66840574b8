package cli

import (
	"context"

	"github.com/lemctl/lemctl/host/cli/configcmd"
	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/config"
)

// Transitional: the hooks forward to the Factory until the commands take it (removed below).
func init() {
	configcmd.NewConfigurer = func(env *cliutil.Env) (config.PluginConfigurer, func(), error) {
		return env.Configurer(context.Background())
	}
}
