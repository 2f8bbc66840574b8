package launch

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SlurmTask is one task of a Slurm step (`lemctl worker --slurm RUNDIR`): the agent between the
// parent's coordinator, reached over TCP, and one worker that it starts as a local subprocess
// (Local), so that the parent learns the worker's exit status even when the worker is killed.
type SlurmTask struct {
	RunDir     string
	Executable string
	Log        io.Writer // the agent's own messages (srun.log)
	// Getenv reads the task's environment (os.Getenv when nil).
	Getenv func(string) string
	// DialTimeout bounds the attempts to reach the parent (1 min when 0).
	DialTimeout time.Duration
}

func (t *SlurmTask) getenv(k string) string {
	if t.Getenv != nil {
		return t.Getenv(k)
	}
	return os.Getenv(k)
}

func (t *SlurmTask) logf(format string, args ...any) {
	if t.Log != nil {
		fmt.Fprintf(t.Log, "lemctl slurm task: "+format+"\n", args...)
	}
}

// Run runs the task to its end and returns the worker's exit code (1 with the reason when the
// task could not start its worker).
func (t *SlurmTask) Run() (int, error) {
	rank, err := strconv.Atoi(t.getenv("SLURM_PROCID"))
	if err != nil {
		return 2, fmt.Errorf("lemctl worker --slurm runs as a task of `srun` (no valid SLURM_PROCID: %q)", t.getenv("SLURM_PROCID"))
	}
	spec, err := ReadSpec(filepath.Join(t.RunDir, fmt.Sprintf("worker_%d.spec.json", rank)))
	if err != nil {
		return 2, err
	}
	if spec.Slurm == nil || spec.Slurm.Secret == "" || len(spec.Slurm.Addrs) == 0 {
		return 2, fmt.Errorf("the spec of rank %d has no coordinator address or secret", rank)
	}
	tcp, err := t.dial(spec.Slurm.Addrs)
	if err != nil {
		return 1, err
	}
	defer tcp.Close()
	parent := NewConn(tcp, tcp)
	host, _ := os.Hostname()
	hi := Message{Type: MsgHello, Rank: rank, Secret: spec.Slurm.Secret, Host: host, BootID: bootID(),
		JobID: t.getenv("SLURM_JOB_ID"), StepID: t.getenv("SLURM_STEP_ID")}
	fail := func(err error) (int, error) {
		_ = parent.Send(hi)
		_ = parent.Send(Message{Type: MsgError, Rank: rank, Error: err.Error()})
		_ = parent.Send(Message{Type: MsgExit, Rank: rank, ExitCode: 1})
		return 1, err
	}
	if err := t.placeOnNode(spec, host); err != nil {
		return fail(err)
	}
	// Signals for the step (scancel sends SIGTERM) go to the worker too; the agent stays to
	// report how the worker ended.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	w, err := (&Local{Executable: t.Executable, RunDir: t.RunDir}).Launch(context.Background(), spec)
	if err != nil {
		return fail(err)
	}
	hi.Pid = w.Pid()
	if err := parent.Send(hi); err != nil {
		_ = w.Kill()
		code, _ := w.Wait()
		return code, fmt.Errorf("send hello to the parent: %w", err)
	}
	go func() {
		for s := range sigs {
			t.logf("rank %d: %s: passing it to the worker (pid %d)", rank, s, w.Pid())
			_ = syscall.Kill(-w.Pid(), s.(syscall.Signal))
		}
	}()
	go func() {
		for {
			m, err := parent.Recv()
			if err != nil {
				// The parent is gone: the worker sees its channel close and gives up.
				_ = w.Conn().Close()
				return
			}
			if m.Type == MsgSignal {
				switch m.Name {
				case "INT":
					_ = w.Interrupt()
				case "KILL":
					_ = w.Kill()
				}
				continue
			}
			_ = w.Conn().Send(m)
		}
	}()
	for {
		m, err := w.Conn().Recv()
		if err != nil {
			break
		}
		_ = parent.Send(m)
	}
	code, werr := w.Wait()
	if werr != nil {
		t.logf("rank %d: wait for the worker: %v", rank, werr)
	}
	_ = parent.Send(Message{Type: MsgExit, Rank: rank, ExitCode: code})
	if code != 0 {
		return code, fmt.Errorf("rank %d: the worker %s (log: %s)", rank, DescribeExit(code), w.LogPath())
	}
	return 0, nil
}

// dial reaches the parent at the first address that answers, retrying until DialTimeout.
func (t *SlurmTask) dial(addrs []string) (net.Conn, error) {
	limit := t.DialTimeout
	if limit <= 0 {
		limit = time.Minute
	}
	deadline := time.Now().Add(limit)
	var errs []string
	for {
		errs = errs[:0]
		for _, a := range addrs {
			c, err := net.DialTimeout("tcp", a, 5*time.Second)
			if err == nil {
				return c, nil
			}
			errs = append(errs, err.Error())
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("cannot reach the coordinator of `lemctl run` within %s: %s", limit, strings.Join(errs, "; "))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// placeOnNode gives the spec this task's device slot: NodeSlots[SLURM_LOCALID]. CPU pinning is
// left to Slurm (its task binding), and an accelerator named by the parent's node's id is, on
// another node, that node's device of the same index.
func (t *SlurmTask) placeOnNode(spec *Spec, host string) error {
	slots := spec.Slurm.NodeSlots
	if len(slots) == 0 {
		return nil
	}
	local, err := strconv.Atoi(t.getenv("SLURM_LOCALID"))
	if err != nil || local < 0 {
		return fmt.Errorf("no valid SLURM_LOCALID (%q)", t.getenv("SLURM_LOCALID"))
	}
	if local >= len(slots) {
		return fmt.Errorf("this node runs more tasks (SLURM_LOCALID %d) than launch.devices × launch.processes_per_device gives slots per node (%d): ask Slurm for at most %d tasks per node (--ntasks-per-node)",
			local, len(slots), len(slots))
	}
	ns := slots[local]
	spec.Device, spec.Threads, spec.CPUs = ns.Device, ns.Threads, nil
	if host == spec.Slurm.ParentHost {
		return nil
	}
	// Slots are unique per (host, device): name the host. An accelerator's id is the parent's
	// node's: here the device of the same index stands for it, in its visibility environment
	// too (a variable that named the device by its id names it by its index).
	if spec.Device.Kind == DeviceAccelerator {
		proc := spec.Device.Slot[strings.LastIndex(spec.Device.Slot, ":")+1:]
		env := make(map[string]string, len(spec.Device.Env))
		for k, v := range spec.Device.Env {
			if v == spec.Device.UUID {
				v = strconv.Itoa(spec.Device.Index)
			}
			env[k] = v
		}
		spec.Device.Env, spec.Device.UUID = env, ""
		spec.Device.Slot = fmt.Sprintf("%s:device:%d:%s", host, spec.Device.Index, proc)
		return nil
	}
	spec.Device.Slot = host + ":" + spec.Device.Slot
	return nil
}

func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
