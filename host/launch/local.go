package launch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"syscall"

	"golang.org/x/sys/unix"
)

// Launcher starts one worker. The local launcher runs subprocesses; another launcher (Slurm)
// implements the same interface.
type Launcher interface {
	Launch(ctx context.Context, spec *Spec) (Worker, error)
}

// Worker is a started worker as the parent sees it.
type Worker interface {
	Rank() int
	Conn() *Conn
	// Interrupt asks the worker to stop gracefully (SIGINT to its process group).
	Interrupt() error
	// Kill ends the worker and everything in its process group at once.
	Kill() error
	// Wait blocks until the worker exits and returns its exit code.
	Wait() (int, error)
	Pid() int
	LogPath() string
}

// Local launches `lemctl worker --spec FILE` subprocesses of the running executable.
type Local struct {
	Executable string   // the lemctl binary
	RunDir     string   // where specs and worker logs go
	Env        []string // extra environment for every worker
}

type localWorker struct {
	rank    int
	cmd     *exec.Cmd
	conn    *Conn
	logPath string
	waited  chan struct{}
	code    int
	err     error
}

// Launch starts one worker in its own process group, with a parent-death signal, its stdout and
// stderr in RunDir/worker_<rank>.log, and the control channel on file descriptors 3 (commands in)
// and 4 (events out).
func (l *Local) Launch(ctx context.Context, spec *Spec) (Worker, error) {
	if err := os.MkdirAll(l.RunDir, 0o755); err != nil {
		return nil, fmt.Errorf("create run directory: %w", err)
	}
	specPath := filepath.Join(l.RunDir, fmt.Sprintf("worker_%d.spec.json", spec.Rank))
	if err := WriteSpec(specPath, spec); err != nil {
		return nil, fmt.Errorf("write spec of rank %d: %w", spec.Rank, err)
	}
	logPath := filepath.Join(l.RunDir, fmt.Sprintf("worker_%d.log", spec.Rank))
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create worker log: %w", err)
	}
	defer logf.Close()
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	evR, evW, err := os.Pipe()
	if err != nil {
		cmdR.Close()
		cmdW.Close()
		return nil, err
	}
	cmd := exec.Command(l.Executable, "worker", "--spec", specPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{cmdR, evW}
	cmd.Env = append(append(os.Environ(), l.Env...), WorkerEnv(spec)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}

	w := &localWorker{rank: spec.Rank, cmd: cmd, logPath: logPath, waited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the forking thread exits: fork from a thread that is held until
		// the worker has exited.
		runtime.LockOSThread()
		// Pinning this (dedicated, never unlocked) thread before the fork pins the worker and,
		// through inheritance, every plugin it starts.
		if err := pin(spec.CPUs); err != nil {
			started <- fmt.Errorf("pin rank %d to cpus %v: %w", spec.Rank, spec.CPUs, err)
			return
		}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		err := cmd.Wait()
		w.code, w.err = ExitCode(err)
		close(w.waited)
	}()
	err = <-started
	cmdR.Close()
	evW.Close()
	if err != nil {
		cmdW.Close()
		evR.Close()
		return nil, fmt.Errorf("start worker %d: %w", spec.Rank, err)
	}
	w.conn = NewConn(evR, cmdW)
	return w, nil
}

// pin restricts the calling OS thread to cpus (nothing when cpus is empty).
func pin(cpus []int) error {
	if len(cpus) == 0 {
		return nil
	}
	var set unix.CPUSet
	set.Zero()
	for _, c := range cpus {
		set.Set(c)
	}
	return unix.SchedSetaffinity(0, &set)
}

// WorkerEnv is the environment a worker gets for its device: its rank, the run's pid, and
// exactly the device's visibility environment as its energy plugin gave it (sorted by name).
// These come last in the worker's environment, so they replace any value the parent inherited.
func WorkerEnv(spec *Spec) []string {
	// LEM_RUN_PID lets a meter tell the run's own processes (every worker descends from the
	// parent) from foreign ones on a device.
	env := []string{fmt.Sprintf("LEM_WORKER_RANK=%d", spec.Rank), fmt.Sprintf("LEM_RUN_PID=%d", os.Getpid())}
	names := make([]string, 0, len(spec.Device.Env))
	for k := range spec.Device.Env {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		env = append(env, k+"="+spec.Device.Env[k])
	}
	return env
}

// ExitCode turns the error of exec.Cmd.Wait into the exit code a shell would report: the
// process's status, or 128 + signal when a signal killed it. Errors other than a non-zero exit
// (the command could not be waited for) are returned.
func ExitCode(err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return -1, err
}

func (w *localWorker) Rank() int       { return w.rank }
func (w *localWorker) Conn() *Conn     { return w.conn }
func (w *localWorker) LogPath() string { return w.logPath }
func (w *localWorker) Pid() int        { return w.cmd.Process.Pid }

func (w *localWorker) Interrupt() error {
	return syscall.Kill(-w.cmd.Process.Pid, syscall.SIGINT)
}

func (w *localWorker) Kill() error {
	return syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
}

func (w *localWorker) Wait() (int, error) {
	<-w.waited
	return w.code, w.err
}
