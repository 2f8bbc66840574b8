package launch

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// SlurmSpec is what a Slurm task needs beyond the worker's own spec: where the parent's
// coordinator listens, the run's secret that authenticates the task's connection (in the spec
// file, mode 0600, never on a command line), and the device slots of one node, indexed by
// SLURM_LOCALID.
type SlurmSpec struct {
	Addrs  []string `json:"addrs"`
	Secret string   `json:"secret"`
	JobID  string   `json:"job_id"`
	// NodeSlots are the device slots of one node, with their thread counts: the task with
	// SLURM_LOCALID i runs on NodeSlots[i].
	NodeSlots []NodeSlot `json:"node_slots"`
	// ParentHost is the hostname of `lemctl run`: a GPU named by UUID is that host's; on
	// another node the task uses the GPU's index.
	ParentHost string `json:"parent_host"`
}

// NodeSlot is one device slot of a node.
type NodeSlot struct {
	Device  DeviceSlot `json:"device"`
	Threads int        `json:"threads"`
}

// ErrNotShared is returned by Slurm.LaunchAll when a task cannot read a file the parent wrote
// in the run directory: the results directory is not shared with every node (exit 2).
var ErrNotShared = errors.New("the results directory is not shared with every node of the allocation")

// Slurm starts every worker of a run as one task of a single `srun` step inside the current
// allocation: task SLURM_PROCID runs rank SLURM_PROCID through `lemctl worker --slurm RUNDIR`
// (slurmtask.go), which connects back to the coordinator over TCP.
type Slurm struct {
	Executable string // the lemctl binary, at the same path on every node
	RunDir     string // on the shared results directory: specs, logs, srun.log
	JobID      string // $SLURM_JOB_ID
	Port       int    // the coordinator's TCP port; 0: any
	Srun       string // the srun command ("srun")
	// ConnectTimeout bounds how long every task has to connect back (a hang guard: 10 min).
	ConnectTimeout time.Duration
	// Log receives what the launcher does, for the parent's log (may be nil).
	Log func(format string, args ...any)

	mu     sync.Mutex
	srun   *exec.Cmd
	exited chan struct{}
	code   int
	ln     net.Listener
}

// NewSecret returns a fresh per-run secret.
func NewSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

func (s *Slurm) logf(format string, args ...any) {
	if s.Log != nil {
		s.Log(format, args...)
	}
}

func (s *Slurm) srunCmd() string {
	if s.Srun != "" {
		return s.Srun
	}
	return "srun"
}

// CheckShared writes a token file into the run directory and has every task of a step of
// world tasks read it back: nil when each did, else an error wrapping ErrNotShared with what
// the tasks said.
func (s *Slurm) CheckShared(ctx context.Context, world int) error {
	if err := os.MkdirAll(s.RunDir, 0o755); err != nil {
		return fmt.Errorf("create run directory: %w", err)
	}
	token, err := NewSecret()
	if err != nil {
		return err
	}
	path := filepath.Join(s.RunDir, "shared-check.token")
	if err := os.WriteFile(path, []byte(token+"\n"), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(path)
	cmd := exec.CommandContext(ctx, s.srunCmd(), "--ntasks", strconv.Itoa(world), "--kill-on-bad-exit=0", "--label", "cat", path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	seen := map[int]bool{}
	for _, line := range strings.Split(out.String(), "\n") {
		task, text, ok := strings.Cut(line, ": ")
		n, err := strconv.Atoi(strings.TrimSpace(task))
		if ok && err == nil && strings.TrimSpace(text) == token {
			seen[n] = true
		}
	}
	if len(seen) == world {
		return nil
	}
	var missing []string
	for i := 0; i < world; i++ {
		if !seen[i] {
			missing = append(missing, strconv.Itoa(i))
		}
	}
	why := strings.TrimSpace(out.String())
	if runErr != nil {
		why = fmt.Sprintf("%s: %v", why, runErr)
	}
	return fmt.Errorf("%w: task(s) %s of `srun --ntasks %d cat %s` did not read the token the parent wrote there (%s); put --results-dir (repository.path) on a file system every node mounts at the same path",
		ErrNotShared, strings.Join(missing, ", "), world, path, why)
}

// LaunchAll listens for the tasks, writes every rank's spec (with the coordinator's addresses
// and the run's secret) and starts one srun step of len(specs) tasks; it returns once every task
// has connected and authenticated, one Worker per rank in rank order.
func (s *Slurm) LaunchAll(ctx context.Context, specs []*Spec) ([]Worker, error) {
	if err := os.MkdirAll(s.RunDir, 0o755); err != nil {
		return nil, fmt.Errorf("create run directory: %w", err)
	}
	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", s.Port))
	if err != nil {
		return nil, fmt.Errorf("slurm launcher: listen on TCP port %d (launch.slurm.port): %w", s.Port, err)
	}
	s.ln = ln
	port := ln.Addr().(*net.TCPAddr).Port
	secret, err := NewSecret()
	if err != nil {
		ln.Close()
		return nil, err
	}
	addrs := coordinatorAddrs(port)
	for _, spec := range specs {
		if spec.Slurm == nil {
			ln.Close()
			return nil, fmt.Errorf("slurm launcher: the spec of rank %d has no slurm section", spec.Rank)
		}
		spec.Slurm.Addrs, spec.Slurm.Secret, spec.Slurm.JobID = addrs, secret, s.JobID
		if err := WriteSpec(filepath.Join(s.RunDir, fmt.Sprintf("worker_%d.spec.json", spec.Rank)), spec); err != nil {
			ln.Close()
			return nil, fmt.Errorf("write spec of rank %d: %w", spec.Rank, err)
		}
	}
	logPath := filepath.Join(s.RunDir, "srun.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("create %s: %w", logPath, err)
	}
	defer logf.Close()
	n := len(specs)
	// --kill-on-bad-exit=0: a task that fails is the coordinator's to report; the others are
	// aborted through their control channel and save what they can.
	args := []string{"--ntasks", strconv.Itoa(n), "--kill-on-bad-exit=0", "--job-name", "lemctl-" + specs[0].ExperimentID,
		s.Executable, "worker", "--slurm", s.RunDir}
	cmd := exec.Command(s.srunCmd(), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so a Ctrl-C at the terminal reaches the parent alone (which stops
	// the workers through their channels); killed with the parent.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	s.logf("slurm: starting %s %s (job %s, coordinator on %s)", s.srunCmd(), strings.Join(args, " "), s.JobID, strings.Join(addrs, ", "))
	if err := cmd.Start(); err != nil {
		ln.Close()
		return nil, fmt.Errorf("start srun: %w", err)
	}
	s.srun, s.exited = cmd, make(chan struct{})
	go func() {
		code, _ := ExitCode(cmd.Wait())
		s.mu.Lock()
		s.code = code
		s.mu.Unlock()
		close(s.exited)
	}()
	workers, err := s.accept(ctx, ln, secret, n, logPath)
	if err != nil {
		s.Close()
		return nil, err
	}
	return workers, nil
}

// coordinatorAddrs are the addresses a task may reach the parent at: the hostname first, then
// every non-loopback address of this host, then loopback (a single node).
func coordinatorAddrs(port int) []string {
	var out []string
	if h, err := os.Hostname(); err == nil {
		out = append(out, net.JoinHostPort(h, strconv.Itoa(port)))
	}
	var loop []string
	if ifs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range ifs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.IsLinkLocalUnicast() {
				continue
			}
			hp := net.JoinHostPort(ipn.IP.String(), strconv.Itoa(port))
			if ipn.IP.IsLoopback() {
				loop = append(loop, hp)
			} else {
				out = append(out, hp)
			}
		}
	}
	return append(out, loop...)
}

type hello struct {
	conn net.Conn
	c    *Conn
	m    Message
}

// accept waits for n authenticated hellos, one per rank. A connection with a wrong secret or
// rank is closed and logged; srun exiting first, ctx ending or ConnectTimeout fails the launch.
func (s *Slurm) accept(ctx context.Context, ln net.Listener, secret string, n int, logPath string) ([]Worker, error) {
	hellos := make(chan hello)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
				c := NewConn(conn, conn)
				m, err := c.Recv()
				_ = conn.SetReadDeadline(time.Time{})
				if err != nil || m.Type != MsgHello || subtle.ConstantTimeCompare([]byte(m.Secret), []byte(secret)) != 1 {
					s.logf("slurm: refused a connection from %s: no hello with the run's secret", conn.RemoteAddr())
					conn.Close()
					return
				}
				select {
				case hellos <- hello{conn: conn, c: c, m: m}:
				case <-stop:
					conn.Close()
				}
			}()
		}
	}()
	timeout := s.ConnectTimeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	byRank := make([]*slurmWorker, n)
	got := 0
	closeAll := func() {
		for _, w := range byRank {
			if w != nil {
				w.tcp.Close()
			}
		}
	}
	for got < n {
		select {
		case h := <-hellos:
			r := h.m.Rank
			if r < 0 || r >= n || byRank[r] != nil {
				s.logf("slurm: refused a second or out-of-range hello for rank %d from %s", r, h.conn.RemoteAddr())
				h.conn.Close()
				continue
			}
			byRank[r] = newSlurmWorker(s, h, filepath.Join(s.RunDir, fmt.Sprintf("worker_%d.log", r)))
			got++
			s.logf("slurm: rank %d connected from %s (pid %d, step %s.%s)", r, h.m.Host, h.m.Pid, h.m.JobID, h.m.StepID)
		case <-s.exited:
			closeAll()
			return nil, fmt.Errorf("srun exited (%s) before every task connected back (%d of %d did); see %s and the worker logs in %s",
				DescribeExit(s.exitCode()), got, n, logPath, s.RunDir)
		case <-timer.C:
			closeAll()
			return nil, fmt.Errorf("only %d of %d Slurm tasks connected back within %s; see %s", got, n, timeout, logPath)
		case <-ctx.Done():
			closeAll()
			return nil, fmt.Errorf("interrupted while the Slurm tasks were starting: %w", context.Cause(ctx))
		}
	}
	out := make([]Worker, n)
	for i, w := range byRank {
		out[i] = w
	}
	return out, nil
}

func (s *Slurm) exitCode() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.code
}

// StepID is the Slurm step the tasks run in ("" before they connected).
func (s *Slurm) StepID(workers []Worker) string {
	for _, w := range workers {
		if sw, ok := w.(*slurmWorker); ok && sw.hello.StepID != "" {
			return sw.hello.StepID
		}
	}
	return ""
}

// Close stops listening and waits for srun to exit after its tasks did, killing it after a
// grace period (a task whose node died leaves srun waiting).
func (s *Slurm) Close() {
	if s.ln != nil {
		s.ln.Close()
	}
	if s.srun == nil {
		return
	}
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		s.logf("slurm: srun did not exit 30 s after its tasks: killing it")
		_ = syscall.Kill(-s.srun.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
}

// slurmWorker is one rank of the step, as the coordinator sees it: the task's agent relays its
// worker's control channel over TCP and reports the worker's exit status.
type slurmWorker struct {
	s       *Slurm
	tcp     net.Conn
	hello   Message
	conn    *Conn // what the coordinator reads: the agent's messages less exit
	logPath string
	done    chan struct{}
	gotExit bool
	code    int
}

type tcpWriter struct{ c net.Conn }

func (w tcpWriter) Write(b []byte) (int, error) { return w.c.Write(b) }

// Close ends the parent's side of the channel.
func (w tcpWriter) Close() error { return w.c.Close() }

func newSlurmWorker(s *Slurm, h hello, logPath string) *slurmWorker {
	pr, pw := io.Pipe()
	w := &slurmWorker{s: s, tcp: h.conn, hello: h.m, logPath: logPath, done: make(chan struct{})}
	w.conn = NewConn(pr, tcpWriter{h.conn})
	go func() {
		defer close(w.done)
		enc := json.NewEncoder(pw)
		for {
			m, err := h.c.Recv()
			if err != nil {
				pw.Close()
				return
			}
			if m.Type == MsgExit {
				w.gotExit, w.code = true, m.ExitCode
				continue
			}
			if err := enc.Encode(m); err != nil {
				return
			}
		}
	}()
	return w
}

func (w *slurmWorker) Rank() int       { return w.hello.Rank }
func (w *slurmWorker) Conn() *Conn     { return w.conn }
func (w *slurmWorker) LogPath() string { return w.logPath }
func (w *slurmWorker) Pid() int        { return w.hello.Pid }

// Host is the task's hostname and boot id.
func (w *slurmWorker) Host() (hostname, bootID string) { return w.hello.Host, w.hello.BootID }

// Interrupt asks the task's agent to send SIGINT to the worker's process group.
func (w *slurmWorker) Interrupt() error {
	return w.conn.Send(Message{Type: MsgSignal, Name: "INT"})
}

// Kill asks the task's agent to kill the worker's process group; when the agent cannot be
// reached, srun is killed, which ends the whole step.
func (w *slurmWorker) Kill() error {
	if err := w.conn.Send(Message{Type: MsgSignal, Name: "KILL"}); err != nil {
		if w.s.srun != nil {
			return syscall.Kill(-w.s.srun.Process.Pid, syscall.SIGKILL)
		}
		return err
	}
	return nil
}

// Wait returns the worker's exit code as its agent reported it; when the connection ended
// without one (the task was killed or its node failed), -1 and why.
func (w *slurmWorker) Wait() (int, error) {
	<-w.done
	if w.gotExit {
		return w.code, nil
	}
	return -1, fmt.Errorf("lost the connection to the task of rank %d on %s without its exit status: the task was killed or its node failed (see %s and %s)",
		w.hello.Rank, w.hello.Host, w.logPath, filepath.Join(w.s.RunDir, "srun.log"))
}
