package launch

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dialHello connects to ln and sends a hello for rank with secret.
func dialHello(t *testing.T, ln net.Listener, rank int, secret string) (net.Conn, *Conn) {
	t.Helper()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn := NewConn(c, c)
	if err := conn.Send(Message{Type: MsgHello, Rank: rank, Secret: secret, Host: "node-a", Pid: 4242, JobID: "7", StepID: "0"}); err != nil {
		t.Fatal(err)
	}
	return c, conn
}

// TestSlurmAcceptAuthenticatesTasks: a connection without the run's secret is closed unheard;
// the tasks with it become the workers of their ranks, whose messages reach the coordinator and
// whose exit status (relayed by the agent, never shown to the coordinator as a message) is what
// Wait returns. A task whose connection drops without an exit status fails with the reason.
func TestSlurmAcceptAuthenticatesTasks(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := &Slurm{RunDir: t.TempDir(), exited: make(chan struct{}), ConnectTimeout: time.Minute}
	type result struct {
		ws  []Worker
		err error
	}
	done := make(chan result, 1)
	go func() {
		ws, err := s.accept(context.Background(), ln, "right", 2, "srun.log")
		done <- result{ws, err}
	}()

	bad, _ := dialHello(t, ln, 0, "wrong")
	_ = bad.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := bad.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("a hello with the wrong secret: read %v, want the connection closed (EOF)", err)
	}
	c0, conn0 := dialHello(t, ln, 0, "right")
	defer c0.Close()
	c1, conn1 := dialHello(t, ln, 1, "right")
	var res result
	select {
	case res = <-done:
	case <-time.After(time.Minute):
		t.Fatal("accept did not return after both ranks connected")
	}
	if res.err != nil || len(res.ws) != 2 {
		t.Fatalf("accept: %v workers, err %v", len(res.ws), res.err)
	}
	w0, w1 := res.ws[0], res.ws[1]
	if w0.Rank() != 0 || w1.Rank() != 1 || w0.Pid() != 4242 {
		t.Errorf("workers: ranks %d, %d, pid %d", w0.Rank(), w1.Rank(), w0.Pid())
	}
	if h, _ := w0.(*slurmWorker).Host(); h != "node-a" {
		t.Errorf("host %q, want node-a", h)
	}
	// Task → coordinator: a barrier passes, the exit status does not.
	_ = conn0.Send(Message{Type: MsgBarrier, Rank: 0, Name: BarrierBaseline})
	_ = conn0.Send(Message{Type: MsgExit, Rank: 0, ExitCode: 3})
	c0.(*net.TCPConn).CloseWrite()
	m, err := w0.Conn().Recv()
	if err != nil || m.Type != MsgBarrier || m.Name != BarrierBaseline {
		t.Errorf("coordinator got %+v, %v; want the baseline barrier", m, err)
	}
	if m, err := w0.Conn().Recv(); err != io.EOF {
		t.Errorf("after the exit status: %+v, %v; want EOF", m, err)
	}
	if code, err := w0.Wait(); code != 3 || err != nil {
		t.Errorf("rank 0 Wait: %d, %v; want 3 (the agent's report)", code, err)
	}
	// Coordinator → task: a signal request and a release travel as messages.
	if err := w0.Interrupt(); err != nil {
		t.Fatal(err)
	}
	if m, err := conn0.Recv(); err != nil || m.Type != MsgSignal || m.Name != "INT" {
		t.Errorf("task got %+v, %v; want a signal INT request", m, err)
	}
	// Rank 1's task dies without an exit status.
	c1.Close()
	for {
		if _, err := w1.Conn().Recv(); err != nil {
			break
		}
	}
	code, err := w1.Wait()
	if code != -1 || err == nil || !strings.Contains(err.Error(), "without its exit status") {
		t.Errorf("rank 1 Wait: %d, %v; want -1 and why", code, err)
	}
	_ = conn1
}

// TestSlurmAcceptGivesUpWhenSrunExits: srun exiting before every task connected fails the launch
// with what it knows, instead of waiting.
func TestSlurmAcceptGivesUpWhenSrunExits(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := &Slurm{RunDir: t.TempDir(), exited: make(chan struct{}), code: 1}
	close(s.exited)
	_, err = s.accept(context.Background(), ln, "x", 2, "srun.log")
	if err == nil || !strings.Contains(err.Error(), "0 of 2") || !strings.Contains(err.Error(), "srun.log") {
		t.Errorf("err %v, want srun's exit with 0 of 2 connected and the log", err)
	}
}

// TestSlurmTaskPlaceOnNode: the task's device slot is NodeSlots[SLURM_LOCALID]; on another node
// a GPU loses the parent's UUID (the index names it there) and the slot names the host; a node
// with more tasks than slots is refused with what to ask Slurm for.
func TestSlurmTaskPlaceOnNode(t *testing.T) {
	env0 := map[string]string{"CUDA_VISIBLE_DEVICES": "GPU-a", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
	env1 := map[string]string{"CUDA_VISIBLE_DEVICES": "GPU-b", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
	slots := []NodeSlot{
		{Device: DeviceSlot{Kind: DeviceAccelerator, Index: 0, UUID: "GPU-a", Env: env0, Slot: "nvml:GPU-a:0"}, Threads: 4},
		{Device: DeviceSlot{Kind: DeviceAccelerator, Index: 1, UUID: "GPU-b", Env: env1, Slot: "nvml:GPU-b:0"}, Threads: 4},
	}
	env := func(local string) func(string) string {
		return func(k string) string {
			if k == "SLURM_LOCALID" {
				return local
			}
			return ""
		}
	}
	spec := &Spec{CPUs: []int{0}, Slurm: &SlurmSpec{NodeSlots: slots, ParentHost: "head"}}
	if err := (&SlurmTask{Getenv: env("1")}).placeOnNode(spec, "head"); err != nil {
		t.Fatal(err)
	}
	if spec.Device.UUID != "GPU-b" || spec.Device.Slot != "nvml:GPU-b:0" || spec.Device.Env["CUDA_VISIBLE_DEVICES"] != "GPU-b" || spec.CPUs != nil || spec.Threads != 4 {
		t.Errorf("on the parent's node: %+v, cpus %v", spec.Device, spec.CPUs)
	}
	spec = &Spec{Slurm: &SlurmSpec{NodeSlots: slots, ParentHost: "head"}}
	if err := (&SlurmTask{Getenv: env("1")}).placeOnNode(spec, "node2"); err != nil {
		t.Fatal(err)
	}
	if spec.Device.UUID != "" || spec.Device.Index != 1 || spec.Device.Slot != "node2:device:1:0" ||
		spec.Device.Env["CUDA_VISIBLE_DEVICES"] != "1" || spec.Device.Env["CUDA_DEVICE_ORDER"] != "PCI_BUS_ID" {
		t.Errorf("on another node: %+v", spec.Device)
	}
	if slots[1].Device.Env["CUDA_VISIBLE_DEVICES"] != "GPU-b" {
		t.Errorf("placing a task changed the shared node slots: %v", slots[1].Device.Env)
	}
	err := (&SlurmTask{Getenv: env("2")}).placeOnNode(spec, "node2")
	if err == nil || !strings.Contains(err.Error(), "--ntasks-per-node") {
		t.Errorf("a third task on a node of two slots: %v", err)
	}
}

// fakeSrun writes a script that stands for `srun --ntasks N … --label cat FILE`: task 0 reads
// FILE, the other tasks (on a node without the directory) cannot.
func fakeSrun(t *testing.T, allShared bool) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "srun")
	other := `echo "$i: cat: $f: No such file or directory"`
	if allShared {
		other = `echo "$i: $(cat "$f")"`
	}
	script := `#!/bin/sh
n=$2; for a; do f=$a; done
echo "0: $(cat "$f")"
i=1; while [ $i -lt $n ]; do ` + other + `; i=$((i+1)); done
`
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSlurmCheckShared: the shared-results check passes when every task reads the token the
// parent wrote, and otherwise fails with ErrNotShared naming the tasks that could not and what
// they said; the token file does not stay.
func TestSlurmCheckShared(t *testing.T) {
	dir := t.TempDir()
	ok := &Slurm{RunDir: dir, Srun: fakeSrun(t, true)}
	if err := ok.CheckShared(context.Background(), 3); err != nil {
		t.Errorf("every task read the token: %v", err)
	}
	bad := &Slurm{RunDir: dir, Srun: fakeSrun(t, false)}
	err := bad.CheckShared(context.Background(), 3)
	if !errors.Is(err, ErrNotShared) || !strings.Contains(err.Error(), "task(s) 1, 2") || !strings.Contains(err.Error(), "No such file") {
		t.Errorf("tasks 1 and 2 could not read it: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*token*")); len(left) > 0 {
		t.Errorf("token file left: %v", left)
	}
}
