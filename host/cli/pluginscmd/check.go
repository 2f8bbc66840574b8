package pluginscmd

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

	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/hostclient"
	"github.com/lemctl/lemctl/sdk/plugintest"
)

// checkHandshake names the first rule of `plugins check`: the binary starts and completes the
// go-plugin handshake (docs/protocol.md).
const checkHandshake = "handshake"

func newCheck(env *cliutil.Factory) *cobra.Command {
	var configJSON, reference string
	var session, timeout time.Duration
	cmd := &cobra.Command{
		Use:   "check PATH",
		Short: "Run the conformance suite against a plugin binary, whatever language it is written in",
		Long: `Start the plugin binary at PATH as lemctl does (handshake, AutoMTLS, gRPC), then run the
sdk's conformance suite (sdk/plugintest) against it over RPC: Info and config schema, Configure
rejecting bad keys, every kind it claims, stream order, error codes, sessions, and the sanity
rules energy-units (a counter's average power between its kind's floor and its declared max
power) and engine-tokens (an engine's input token counts equal its own loader's tokenizer).
Each rule is printed passed or failed. Exit code 0 when every rule passed, 1 when one failed,
2 for bad usage (PATH missing or not executable, a bad flag). See docs/plugins.md and
docs/protocol.md.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cliutil.Usagef("plugins check takes one PATH, the plugin binary to check (got %d arguments)", len(args))
			}
			path, err := checkablePath(args[0])
			if err != nil {
				return cliutil.Usage(err)
			}
			cfg := map[string]any{}
			if configJSON != "" {
				if err := json.Unmarshal([]byte(configJSON), &cfg); err != nil || cfg == nil {
					return cliutil.Usagef("--config %q is not a JSON object (valid: the plugin's table as JSON, e.g. '{\"power_w\": 50}')", configJSON)
				}
			}
			if session <= 0 || timeout <= 0 {
				return cliutil.Usagef("--session and --timeout must be positive durations such as 300ms (got %s, %s)", session, timeout)
			}
			return runCheck(cmd.Context(), env, path, plugintest.Options{
				Config:  cfg,
				Loader:  plugintest.LoaderOptions{Reference: reference},
				Energy:  plugintest.EnergyOptions{Session: session},
				Timeout: timeout,
			}, configJSON != "")
		},
	}
	cmd.Flags().StringVar(&configJSON, "config", "", "the plugin's configuration table as a JSON object (default: empty, the plugin's defaults)")
	cmd.Flags().StringVar(&reference, "reference", "", "a model reference the plugin's loader resolves (required for loader and engine plugins)")
	cmd.Flags().DurationVar(&session, "session", 300*time.Millisecond, "how long each energy measurement session of the suite runs")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "bound on the start and on each check")
	return cmd
}

// checkablePath resolves PATH and refuses what cannot be a plugin binary.
func checkablePath(arg string) (string, error) {
	path, err := filepath.Abs(arg)
	if err != nil {
		return "", fmt.Errorf("plugins check %s: %v", arg, err)
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("plugins check %s: no such file (valid: the path of a plugin executable)", arg)
	case err != nil:
		return "", fmt.Errorf("plugins check %s: %v", arg, err)
	case fi.IsDir():
		return "", fmt.Errorf("plugins check %s: is a directory (valid: the path of a plugin executable)", arg)
	case fi.Mode()&0o111 == 0:
		return "", fmt.Errorf("plugins check %s: not executable (chmod +x it)", arg)
	}
	return path, nil
}

// runCheck opens the plugin and runs the suite; configured says --config was given (a
// repository is only checked on a store the user chose, since the suite writes to it).
func runCheck(ctx context.Context, env *cliutil.Factory, path string, opts plugintest.Options, configured bool) error {
	startCtx, cancel := context.WithTimeout(ctx, opts.Timeout)
	c, err := hostclient.Open(startCtx, path, hostclient.WithClientLogger(env.Logger.Named(filepath.Base(path))), hostclient.WithStartTimeout(opts.Timeout))
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return cliutil.Exit(cliutil.ExitInterrupted, ctx.Err())
		}
		writeRule(env.Out, checkHandshake, []string{err.Error()})
		return cliutil.Failed(fmt.Errorf("plugins check %s: rule %s failed: the plugin did not start (docs/protocol.md)", path, checkHandshake))
	}
	defer c.Close()
	info := c.Info()
	if (info.Serves(sdk.KindLoader) || info.Serves(sdk.KindEngine)) && opts.Loader.Reference == "" {
		return cliutil.Usagef("plugin %q serves %s: name a model reference its loader resolves with --reference", info.Name, kindList(info.Kinds))
	}
	if info.Serves(sdk.KindRepository) && !configured {
		return cliutil.Usagef("plugin %q is a repository: the check stores plugintest-* experiments in it, so point it at a scratch location with --config (its keys: lemctl plugins describe %s)", info.Name, info.Name)
	}
	if info.Serves(sdk.KindEngine) && !info.Serves(sdk.KindLoader) {
		return cliutil.Usagef("plugin %q is an engine without a loader: plugins check cannot give it an artifact; run sdk/plugintest from Go with Options.Engine.Artifact", info.Name)
	}
	fmt.Fprintf(env.Out, "checking %s: %s %s, kinds %s, api %s\n", path, info.Name, orDash(info.Version), orDash(kindList(info.Kinds)), orDash(intList(info.APIVersions)))
	writeRule(env.Out, checkHandshake, nil)
	rep := plugintest.CheckClient(ctx, c, opts)
	if ctx.Err() != nil {
		return cliutil.Exit(cliutil.ExitInterrupted, ctx.Err())
	}
	var failed []string
	for _, check := range rep.Checks {
		var msgs []string
		for _, f := range rep.FailuresOf(check) {
			msgs = append(msgs, f.Message)
		}
		writeRule(env.Out, check, msgs)
		if len(msgs) > 0 {
			failed = append(failed, check)
		}
	}
	total := len(rep.Checks) + 1
	fmt.Fprintf(env.Out, "%d of %d rules passed\n", total-len(failed), total)
	if len(failed) > 0 {
		return cliutil.Failed(fmt.Errorf("plugins check %s: rule(s) failed: %s", path, strings.Join(failed, ", ")))
	}
	return nil
}

// writeRule prints one rule: PASS, or FAIL with every broken requirement under it.
func writeRule(w io.Writer, rule string, failures []string) {
	if len(failures) == 0 {
		fmt.Fprintf(w, "PASS  %s\n", rule)
		return
	}
	fmt.Fprintf(w, "FAIL  %s\n", rule)
	for _, m := range failures {
		fmt.Fprintf(w, "      - %s\n", m)
	}
}
