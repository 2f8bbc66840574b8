// Package servecmd is `lemctl serve FILE`: it loads the experiment file as `lemctl run` does,
// starts its [model] loader and [engine] plugins once, loads the model on the device of
// [launch] and serves it over the OpenAI HTTP API (host/serve) until SIGINT or SIGTERM, then
// shuts down gracefully, unloads and closes the plugins.
//
// It prints one startup line to stderr (address, model, engine, batching) and logs there; it
// measures no energy and writes no results.
package servecmd

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"

	"github.com/lemctl/lemctl/host/cli/runcmd"
	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/config"
	"github.com/lemctl/lemctl/host/discovery"
	"github.com/lemctl/lemctl/host/echo"
	"github.com/lemctl/lemctl/host/launch"
	"github.com/lemctl/lemctl/host/serve"
	"github.com/lemctl/lemctl/sdk"
)

// Options are the flags of `lemctl serve`.
type Options struct {
	F        *cliutil.Factory
	File     string
	Addr     string
	MaxBatch int
	MaxQueue int
	Grace    time.Duration
	Set      []string
}

// NewCommand builds `lemctl serve`.
func NewCommand(f *cliutil.Factory) *cobra.Command { return NewCmdServe(f, nil) }

// NewCmdServe builds `lemctl serve FILE`; runF, when not nil, runs instead of serveRun (tests).
func NewCmdServe(f *cliutil.Factory, runF func(*Options) error) *cobra.Command {
	o := &Options{F: f}
	cmd := &cobra.Command{
		Use:   "serve FILE",
		Short: "Serve the model and engine of an experiment file over the OpenAI HTTP API",
		Long: `serve loads the [model] of the experiment FILE in its [engine] plugin (on the device of
[launch]; cpu by default) and answers the OpenAI API on --addr: GET /v1/models, POST
/v1/completions and /v1/chat/completions (streamed or not), vLLM's POST /tokenize and /detokenize,
and GET /metrics (Prometheus text). At most --max-batch requests run at once, with the engine's
continuous batching when it has one (else static batches of the waiting requests); --max-queue
more wait, and a request beyond that is answered 429.

SIGINT or SIGTERM stops it: no new connection, running requests finish (at most --grace), the
model is unloaded and the plugins closed. Exit codes: 2 bad usage or config, 1 failure,
130/143 stopped by SIGINT/SIGTERM. docs/serving.md, "lemctl serve".`,
		Example: `  lemctl serve examples/quickstart.toml
  lemctl serve exp.toml --addr 127.0.0.1:9000 --max-batch 16 --set model.ref='"synthetic:llama-tiny"'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.File = args[0]
			switch {
			case o.MaxBatch < 1:
				return cliutil.Usagef("--max-batch %d must be at least 1", o.MaxBatch)
			case o.MaxQueue < 0:
				return cliutil.Usagef("--max-queue %d must not be negative", o.MaxQueue)
			case o.Grace < 0:
				return cliutil.Usagef("--grace %s must not be negative", o.Grace)
			}
			if runF != nil {
				return runF(o)
			}
			return serveRun(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Addr, "addr", "127.0.0.1:8000", "host:port to listen on (port 0: any free port, printed at startup)")
	fl.IntVar(&o.MaxBatch, "max-batch", 8, "requests that run at once at most")
	fl.IntVar(&o.MaxQueue, "max-queue", 256, "requests that wait at most; one more is answered 429")
	fl.DurationVar(&o.Grace, "grace", 10*time.Second, "on SIGINT/SIGTERM, how long running requests may go on before they are cancelled")
	fl.StringArrayVar(&o.Set, "set", nil, "section.key=VALUE with a TOML value (beats the file; repeatable)")
	return cmd
}

// serveRun runs `lemctl serve` with o until a signal.
func serveRun(parent context.Context, o *Options) error {
	ctx, st, stopWatch := runcmd.WatchSignals(parent)
	defer stopWatch()
	err := serveWith(ctx, o)
	if sig, ok := st.Signal(); ok {
		if err != nil && cliutil.CodeOf(err) != cliutil.ExitUsage {
			return cliutil.Exit(128+int(sig), fmt.Errorf("interrupted by signal %d: %w", sig, err))
		}
		if err == nil {
			o.F.Logger.Info("stopped", "signal", sig.String())
			return cliutil.Exit(128+int(sig), nil)
		}
	}
	return err
}

func serveWith(ctx context.Context, o *Options) error {
	env := o.F
	cat, err := env.Catalog(ctx, "")
	if err != nil {
		return cliutil.Usage(err)
	}
	sess := cat.NewSession()
	defer sess.Close()
	cfg, err := config.LoadFile(ctx, o.File, config.Options{Overrides: config.Overrides{Set: o.Set}, Configurer: sess, ResultsDir: env.ResultsDir})
	if err != nil {
		return cliutil.ConfigUsage(err)
	}
	for _, w := range cfg.Warnings {
		env.Logger.Warn(w)
	}
	if !cfg.Launch.Devices.IsCPU() {
		return cliutil.Usagef("launch.devices = %v: lemctl serve runs on the cpu for now; set launch.devices = \"cpu\" (e.g. --set launch.devices='\"cpu\"')", []string(cfg.Launch.Devices))
	}
	sess.SetCallTimeouts(launch.CallTimeouts{ControlS: cfg.Launch.CallTimeouts.ControlS, RepositoryS: cfg.Launch.CallTimeouts.RepositoryS,
		LoadS: cfg.Launch.CallTimeouts.LoadS, GenerateS: cfg.Launch.CallTimeouts.GenerateS}.Client())
	lc, err := sess.Open(ctx, cfg.Model.Plugin, sdk.KindLoader, cfg.PluginTable(cfg.Model.Plugin))
	if err != nil {
		return openError(err)
	}
	ec, err := sess.Open(ctx, cfg.Engine.Plugin, sdk.KindEngine, cfg.PluginTable(cfg.Engine.Plugin))
	if err != nil {
		return openError(err)
	}
	// Listen before loading: a port in use is told at once.
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return cliutil.Usagef("--addr %s: %v", echo.Quote(o.Addr), err)
	}
	defer ln.Close()

	art, err := lc.Loader().Resolve(ctx, cfg.Model.Ref)
	if err != nil {
		return cliutil.Failed(fmt.Errorf("model.ref %s: %w", echo.Quote(cfg.Model.Ref), err))
	}
	eng := ec.Engine()
	if _, err := eng.Load(ctx, sdk.LoadRequest{Artifact: *art, Device: sdk.Device{Kind: "cpu", Index: -1}, Threads: cfg.Launch.Threads}); err != nil {
		return cliutil.Failed(fmt.Errorf("load %s in engine %s: %w", cfg.Model.Ref, cfg.Engine.Plugin, err))
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := eng.Unload(uctx); err != nil {
			env.Logger.Warn("unload failed", "error", err)
		}
	}()
	continuous, err := serve.ProbeContinuous(ctx, eng)
	if err != nil {
		return cliutil.Failed(err)
	}
	mode := serve.Static
	if continuous {
		mode = serve.Continuous
	}
	srv, err := serve.New(serve.Options{Model: cfg.Model.Ref, EngineName: cfg.Engine.Plugin, Engine: eng, Tokenizer: lc.Loader(),
		ContextLength: art.ContextLength, VocabSize: art.VocabSize, Mode: mode, MaxBatch: o.MaxBatch, MaxQueue: o.MaxQueue, Logger: env.Logger})
	if err != nil {
		return cliutil.Failed(err)
	}
	note := ""
	if mode == serve.Static {
		note = " (the engine has no continuous batching: waiting requests run as static batches)"
	}
	fmt.Fprintf(env.Err, "lemctl serve: listening on http://%s model=%s engine=%s batching=%s max_batch=%d%s\n",
		ln.Addr(), cfg.Model.Ref, cfg.Engine.Plugin, mode, o.MaxBatch, note)
	if err := srv.Run(ctx, ln, o.Grace); err != nil {
		return cliutil.Failed(fmt.Errorf("serve: %w", err))
	}
	return nil
}

func openError(err error) error {
	if discovery.IsUsage(err) {
		return cliutil.Usage(err)
	}
	return cliutil.Failed(err)
}
