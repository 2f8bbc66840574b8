package e2e

// The fault suite (docs/reliability.md, "Fault suite"): stuck and killed plugins, signals to
// lemctl and its process group, a killed lemctl, a worker dead mid-window. Each case asserts the
// outcome — exit code, manifest state, the rank and phase named, no process left — never how
// long it took; the timeouts are hang guards only.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// faultRun is one lemctl run of the fault suite, with a unique marker in its environment (every
// worker and plugin inherits it) to find whatever it left behind.
type faultRun struct {
	*run
	dir, res, pause, marker string
}

// startFault starts `lemctl run` on an experiment of workers workers, pausing as pauseAt
// ("<phase>:<rank>", "" for none); setsid puts lemctl in a session (and process group) of its own.
func startFault(t *testing.T, name string, workers int, extra string, pauseAt string, setsid bool, args ...string) *faultRun {
	t.Helper()
	dir := t.TempDir()
	f := &faultRun{dir: dir, res: filepath.Join(dir, "results"), pause: filepath.Join(dir, "paused"),
		marker: fmt.Sprintf("LEM_E2E_FAULT=%s-%d", name, time.Now().UnixNano())}
	cfg := filepath.Join(dir, "e.toml")
	if err := os.WriteFile(cfg, []byte(experiment(name, workers, extra)), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{f.marker, "XDG_CACHE_HOME=" + t.TempDir()}
	if pauseAt != "" {
		env = append(env, "LEM_TEST_PAUSE="+pauseAt+":"+f.pause)
	}
	r := &run{}
	r.cmd = exec.Command(lemctlBin, append([]string{"run", cfg, "--plugin-dir", pluginDir, "--results-dir", f.res}, args...)...)
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	r.cmd.Env = append(os.Environ(), env...)
	if setsid {
		r.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.run = r
	t.Cleanup(func() {
		// Whatever a failed case left: never leak into the next one.
		for _, p := range f.leftovers() {
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
		}
	})
	return f
}

// waitPaused waits for the paused worker and returns its pid.
func (f *faultRun) waitPaused(t *testing.T) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := waitFile(ctx, f.pause)
	if err != nil {
		_ = f.cmd.Process.Kill()
		t.Fatalf("the worker never paused: %v\n%s", err, f.stderr.String())
	}
	pid, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// resume lets the paused worker go on.
func (f *faultRun) resume(t *testing.T) {
	t.Helper()
	if err := os.Remove(f.pause); err != nil {
		t.Fatal(err)
	}
}

type proc struct {
	pid, ppid int
	exe       string
	cmdline   string
}

func (p proc) String() string { return fmt.Sprintf("%d (%s)", p.pid, p.cmdline) }

// processes lists every live (non-zombie) process.
func processes() []proc {
	var out []proc
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) < 2 || fields[0] == "Z" || fields[0] == "X" {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		exe, _ := os.Readlink(filepath.Join(d, "exe"))
		cmd, _ := os.ReadFile(filepath.Join(d, "cmdline"))
		out = append(out, proc{pid: pid, ppid: ppid, exe: exe, cmdline: strings.ReplaceAll(string(cmd), "\x00", " ")})
	}
	return out
}

// leftovers are the processes of this run still alive: those whose parent chain leads to its
// lemctl, whose command line names its results directory, or whose environment carries its
// marker.
func (f *faultRun) leftovers() []proc {
	all := processes()
	parent := map[int]int{}
	for _, p := range all {
		parent[p.pid] = p.ppid
	}
	root := f.cmd.Process.Pid
	var out []proc
	for _, p := range all {
		if p.pid == root || p.pid == os.Getpid() {
			continue
		}
		mine := strings.Contains(p.cmdline, f.res)
		for q, n := parent[p.pid], 0; q > 1 && n < 64 && !mine; q, n = parent[q], n+1 {
			mine = q == root
		}
		if !mine {
			env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p.pid))
			mine = bytes.Contains(env, []byte(f.marker+"\x00"))
		}
		if mine {
			out = append(out, p)
		}
	}
	return out
}

// assertNothingLeft fails unless every process of the run is gone within a short grace.
func (f *faultRun) assertNothingLeft(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for len(f.leftovers()) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if left := f.leftovers(); len(left) > 0 {
		t.Errorf("processes of the run left behind: %v", left)
	}
}

// child returns the child of pid running the plugin binary named bin.
func child(t *testing.T, pid int, bin string) int {
	t.Helper()
	for _, p := range processes() {
		if p.ppid == pid && filepath.Base(p.exe) == bin {
			return p.pid
		}
	}
	t.Fatalf("no %s child of worker %d", bin, pid)
	return 0
}

const exampleMeter = `
[energy]
meters = ["example-meter"]
`

// A SIGSTOPped engine mid-window is found by the watchdog: exit 1 naming the rank, the phase
// and the plugin call, manifest failed, nothing left running.
func TestFaultStoppedEngineIsCaughtByTheWatchdog(t *testing.T) {
	f := startFault(t, "stall", 2, noMeters, "window:0", false, "--set", "launch.stall_timeout_s=3", "--progress", "text")
	worker := f.waitPaused(t)
	engine := child(t, worker, "lem-plugin-example-engine")
	if err := syscall.Kill(engine, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(engine, syscall.SIGCONT) })
	f.resume(t)
	if code := f.wait(t, 3*time.Minute); code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, f.stderr.String())
	}
	for _, want := range []string{"[rank 0] FAILED", "stalled", "engine.Generate", "last phase measured"} {
		if !strings.Contains(f.stderr.String(), want) {
			t.Errorf("stderr does not say %q:\n%s", want, f.stderr.String())
		}
	}
	m := readManifest(t, f.res, experimentID(t, f.res))
	if m.State != "failed" || !strings.Contains(m.Error, "rank 0") || !strings.Contains(m.Error, "engine.Generate") {
		t.Errorf("manifest %s: %s", m.State, m.Error)
	}
	f.assertNothingLeft(t)
}

// SIGINT, SIGTERM and SIGHUP to lemctl's whole process group end the run as interrupted, with
// the final manifest written (the parent's repository plugin is not in that group).
func TestFaultGroupSignalsLeaveAnInterruptedManifest(t *testing.T) {
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGTERM, 143}, {syscall.SIGHUP, 129}, {syscall.SIGINT, 130}} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			f := startFault(t, "group-signal", 2, exampleMeter, "window:0", true, "--progress", "quiet")
			f.waitPaused(t)
			if err := syscall.Kill(-f.cmd.Process.Pid, tc.sig); err != nil {
				t.Fatal(err)
			}
			if code := f.wait(t, 2*time.Minute); code != tc.code {
				t.Fatalf("exit %d after %s to the group, want %d\n%s", code, tc.sig, tc.code, f.stderr.String())
			}
			m := readManifest(t, f.res, experimentID(t, f.res))
			if m.State != "interrupted" || !strings.Contains(m.Error, "SIG") {
				t.Errorf("manifest %q (%s), want interrupted naming the signal", m.State, m.Error)
			}
			f.assertNothingLeft(t)
		})
	}
}

// A SIGKILLed lemctl leaves no process behind; its run lists as abandoned and aggregates with
// --no-strict from what its workers saved.
func TestFaultKilledLemctlIsAbandoned(t *testing.T) {
	f := startFault(t, "abandoned", 2, noMeters, "cooldown:1", false, "--progress", "quiet", "--set", "lifecycle.cooldown_s=0.1")
	f.waitPaused(t)
	exp := experimentID(t, f.res)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := waitFile(ctx, filepath.Join(f.res, "raw", exp, ".completed_0")); err != nil {
		t.Fatalf("rank 0 never completed: %v\n%s", err, f.stderr.String())
	}
	if err := f.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := f.wait(t, time.Minute); code != 137 {
		t.Fatalf("exit %d, want 137", code)
	}
	f.assertNothingLeft(t)
	if m := readManifest(t, f.res, exp); m.State != "running" || m.LemctlPID != f.cmd.Process.Pid {
		t.Errorf("stored manifest %q pid %d, want running with lemctl's pid %d", m.State, m.LemctlPID, f.cmd.Process.Pid)
	}
	list := lemctl(t, nil, "results", "list", "-o", "json", "--plugin-dir", pluginDir, "--results-dir", f.res)
	if code := list.wait(t, time.Minute); code != 0 {
		t.Fatalf("results list exited %d: %s", code, list.stderr.String())
	}
	var entries []struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	if err := json.Unmarshal(list.stdout.Bytes(), &entries); err != nil || len(entries) != 1 || entries[0].State != "abandoned" {
		t.Errorf("results list: %v %+v\n%s", err, entries, list.stdout.String())
	}
	show := lemctl(t, nil, "results", "show", exp, "--plugin-dir", pluginDir, "--results-dir", f.res)
	if show.wait(t, time.Minute); !strings.Contains(show.stderr.String()+show.stdout.String(), "abandoned") {
		t.Errorf("results show does not say abandoned:\n%s%s", show.stdout.String(), show.stderr.String())
	}
	agg := lemctl(t, nil, "aggregate", exp, "--no-strict", "--plugin-dir", pluginDir, "--results-dir", f.res)
	if code := agg.wait(t, time.Minute); code != 1 {
		t.Errorf("aggregate --no-strict exited %d, want 1 (partial)\n%s", code, agg.stderr.String())
	}
	a := readAggregated(t, f.res, exp)
	if !a.Partial || a.Workload.Requests != 8 {
		t.Errorf("partial aggregate: partial=%v requests=%d", a.Partial, a.Workload.Requests)
	}
	said := false
	for _, fd := range a.Validity.Findings {
		said = said || strings.Contains(fd.Message, "abandoned")
	}
	if !said {
		t.Errorf("the aggregate does not say the run was abandoned: %+v", a.Validity.Findings)
	}
}

// A plugin of a worker SIGKILLed mid-window fails the run cleanly, naming the rank.
func TestFaultPluginKilledMidWindow(t *testing.T) {
	for _, bin := range []string{"lem-plugin-example-engine", "lem-plugin-example-meter", "lem-plugin-fsstore"} {
		t.Run(strings.TrimPrefix(bin, "lem-plugin-"), func(t *testing.T) {
			f := startFault(t, "plugin-killed", 2, exampleMeter, "window:0", false, "--progress", "text")
			worker := f.waitPaused(t)
			if err := syscall.Kill(child(t, worker, bin), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			f.resume(t)
			if code := f.wait(t, 2*time.Minute); code != 1 {
				t.Fatalf("exit %d, want 1\n%s", code, f.stderr.String())
			}
			if !strings.Contains(f.stderr.String(), "[rank 0] FAILED") {
				t.Errorf("the failure does not name rank 0:\n%s", f.stderr.String())
			}
			m := readManifest(t, f.res, experimentID(t, f.res))
			if m.State != "failed" || len(m.Ranks) != 2 || m.Ranks[0].State != "failed" || !strings.Contains(m.Error, "rank 0") {
				t.Errorf("manifest %q: %s", m.State, m.Error)
			}
			f.assertNothingLeft(t)
		})
	}
}

// A worker that dies mid-window is reported at once, while the others still run, and the others
// are stopped: rank 1 would otherwise measure for ten minutes.
func TestFaultDeadWorkerIsReportedAtOnce(t *testing.T) {
	f := startFault(t, "dead-worker", 2, noMeters, "window:0", false, "--progress", "text", "--set", "workload.min_window_s=600")
	f.waitPaused(t)
	var rank1 int
	for deadline := time.Now().Add(time.Minute); rank1 == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, p := range f.leftovers() {
			if strings.Contains(p.cmdline, "worker_1.spec.json") {
				rank1 = p.pid
			}
		}
	}
	if rank1 == 0 {
		t.Fatal("rank 1's worker not found")
	}
	if err := syscall.Kill(rank1, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := f.wait(t, 3*time.Minute); code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, f.stderr.String())
	}
	if !strings.Contains(f.stderr.String(), "[rank 1] FAILED: ") || !strings.Contains(f.stderr.String(), "signal 9") {
		t.Errorf("the death of rank 1 is not reported with its signal:\n%s", f.stderr.String())
	}
	m := readManifest(t, f.res, experimentID(t, f.res))
	if m.State != "failed" || m.Ranks[1].ExitCode == nil || *m.Ranks[1].ExitCode != 137 || m.Ranks[0].State != "failed" {
		t.Errorf("manifest %q ranks %+v", m.State, m.Ranks)
	}
	f.assertNothingLeft(t)
}
