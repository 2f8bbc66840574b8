// Package workercmd is the hidden `lemctl worker` command: one worker process of a run, started
// by the launcher with a spec file and a control channel on file descriptors 3 (commands in) and
// 4 (events out). Users never run it by hand. Under the Slurm launcher it is also each task of
// the run's srun step (`lemctl worker --slurm RUNDIR`): an agent that connects back to the parent
// over TCP and runs the task's worker (host/launch, SlurmTask).
package workercmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/launch"
	"github.com/lemctl/lemctl/host/worker"
)

// Options are `lemctl worker`'s.
type Options struct {
	F *cliutil.Factory
	// Spec is the worker spec file the launcher wrote.
	Spec string
	// Slurm is the run directory of a Slurm run: this process is a task of its srun step.
	Slurm string
}

// NewCommand builds `lemctl worker`.
func NewCommand(f *cliutil.Factory) *cobra.Command { return NewCmdWorker(f, nil) }

// NewCmdWorker builds `lemctl worker --spec FILE`; runF, when not nil, runs instead of
// workerRun (tests).
func NewCmdWorker(f *cliutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{F: f}
	cmd := &cobra.Command{
		Use:    "worker --spec FILE",
		Short:  "Run one worker of an experiment (started by `lemctl run`)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(opts)
			}
			return workerRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Spec, "spec", "", "worker spec written by the launcher")
	cmd.Flags().StringVar(&opts.Slurm, "slurm", "", "run directory of a Slurm run: run as a task of its srun step")
	return cmd
}

func workerRun(parent context.Context, opts *Options) error {
	env, specPath := opts.F, opts.Spec
	if opts.Slurm != "" {
		t := &launch.SlurmTask{RunDir: opts.Slurm, Executable: env.Executable, Log: env.Err}
		code, err := t.Run()
		if code == 0 {
			return nil
		}
		return cliutil.Exit(code, err)
	}
	if specPath == "" {
		return cliutil.Usagef("--spec is required")
	}
	spec, err := launch.ReadSpec(specPath)
	if err != nil {
		return cliutil.Usage(err)
	}
	in, out := os.NewFile(3, "control-in"), os.NewFile(4, "control-out")
	if in == nil || out == nil {
		return cliutil.Usagef("lemctl worker runs under `lemctl run`: no control channel on fds 3 and 4")
	}
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	// The parent relays Ctrl-C as SIGINT to this process group; SIGTERM is treated alike.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		if _, ok := <-sigs; ok {
			cancel(launch.ErrStopped)
		}
	}()
	conn := launch.NewConn(in, out)
	ctl := launch.NewWorkerSide(conn, spec.Rank, cancel)
	log := hclog.New(&hclog.LoggerOptions{Name: fmt.Sprintf("worker[%d]", spec.Rank), Output: env.Err, Level: hclog.Info})
	w := &worker.Worker{Spec: spec, Control: ctl, Log: log, PauseAt: os.Getenv("LEM_TEST_PAUSE")}
	err = w.Run(ctx)
	switch {
	case err == nil:
		ctl.Done()
		log.Info("raw result saved", "experiment", spec.ExperimentID, "rank", spec.Rank)
		return nil
	case errors.Is(err, launch.ErrStopped):
		ctl.Failed(err)
		return cliutil.Exit(cliutil.ExitInterrupted, err)
	default:
		ctl.Failed(err)
		return cliutil.Failed(err)
	}
}
