package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// needSlurm skips the test when no Slurm cluster answers here — never in CI ($CI set, or
// $LEM_REQUIRE_SLURM=1 as .ci/run sets it after bringing Slurm up with scripts/slurm-local.sh),
// where a missing Slurm is a failure.
func needSlurm(t *testing.T) {
	t.Helper()
	why := ""
	if _, err := exec.LookPath("salloc"); err != nil {
		why = "salloc is not installed (apt-get install slurm-wlm munge)"
	} else if out, err := exec.Command("sinfo", "-h", "-o", "%T").CombinedOutput(); err != nil {
		why = "sinfo fails: " + strings.TrimSpace(string(out))
	} else if s := strings.TrimSpace(string(out)); !strings.Contains(s, "idle") && !strings.Contains(s, "mixed") && !strings.Contains(s, "allocated") {
		why = "no Slurm node is up (sinfo: " + s + ")"
	}
	if why == "" {
		return
	}
	why += "; bring a single-node Slurm up with `sudo scripts/slurm-local.sh up`"
	if os.Getenv("CI") != "" || os.Getenv("LEM_REQUIRE_SLURM") == "1" {
		t.Fatalf("Slurm E2E: %s (CI must run it: .ci/run starts Slurm)", why)
	}
	t.Skip("Slurm E2E skipped: " + why)
}

// salloc runs `salloc --ntasks n lemctl ARGS` in the background.
func salloc(t *testing.T, env []string, n int, args ...string) *run {
	t.Helper()
	r := &run{}
	r.cmd = exec.Command("salloc", append([]string{"--ntasks", strconv.Itoa(n), "--quiet", lemctlBin}, args...)...)
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	r.cmd.Env = append(append(os.Environ(), "XDG_CACHE_HOME="+t.TempDir()), env...)
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return r
}

const slurmLauncher = `launch.launcher="slurm"`

// TestSlurmRunTwoTasks: `salloc -n 2 lemctl run … --set launch.launcher="slurm"` runs its two
// workers as the tasks of one srun step and keeps the invariants of the local 2-worker run:
// two raw results with distinct ranks, every prompt measured once, the aggregate the sum of the
// raws; the job id is recorded in the manifest and in each raw result.
func TestSlurmRunTwoTasks(t *testing.T) {
	needSlurm(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "e.toml")
	if err := os.WriteFile(cfg, []byte(experiment("slurm", 2, noMeters)), 0o644); err != nil {
		t.Fatal(err)
	}
	res := filepath.Join(dir, "results")
	r := salloc(t, nil, 2, "run", cfg, "--plugin-dir", pluginDir, "--results-dir", res, "--progress", "quiet", "--set", slurmLauncher)
	if code := r.wait(t, 5*time.Minute); code != 0 {
		t.Fatalf("salloc lemctl run exited %d\nstderr:\n%s", code, r.stderr.String())
	}
	exp := experimentID(t, res)
	m := readManifest(t, res, exp)
	if m.State != "completed" || m.Slurm == nil || m.Slurm.JobID == "" || m.Slurm.StepID == "" {
		t.Fatalf("manifest: state %q, slurm %+v; want completed with the job and step", m.State, m.Slurm)
	}
	for _, raw := range checkTwoRankPartition(t, res, exp, readAggregated(t, res, exp)) {
		if raw.Slurm == nil || raw.Slurm.JobID != m.Slurm.JobID || raw.Slurm.ProcID == nil || *raw.Slurm.ProcID != raw.Rank {
			t.Errorf("rank %d: raw slurm %+v, want job %s and SLURM_PROCID %d", raw.Rank, raw.Slurm, m.Slurm.JobID, raw.Rank)
		}
	}
}

// TestSlurmScancelStep: `scancel` of the job step while rank 1 is in its window, once rank 0 has
// saved its result — plain (Slurm kills the step's tasks) and with --signal=TERM (the worker
// stops and its agent reports how): the run fails (manifest interrupted or failed), no task or
// plugin is left, rank 0's raw result stays intact, strict aggregation refuses and --no-strict
// is partial.
func TestSlurmScancelStep(t *testing.T) {
	needSlurm(t)
	for _, tc := range []struct {
		name string
		args []string
	}{{"kill", nil}, {"term", []string{"--signal=TERM"}}} {
		t.Run(tc.name, func(t *testing.T) { scancelStep(t, tc.args) })
	}
}

func scancelStep(t *testing.T, scancelArgs []string) {
	dir := t.TempDir()
	pause := filepath.Join(dir, "paused")
	cfg := filepath.Join(dir, "e.toml")
	if err := os.WriteFile(cfg, []byte(experiment("scancel", 2, noMeters)), 0o644); err != nil {
		t.Fatal(err)
	}
	res := filepath.Join(dir, "results")
	r := salloc(t, []string{"LEM_TEST_PAUSE=window:1:" + pause}, 2, "run", cfg, "--plugin-dir", pluginDir, "--results-dir", res, "--progress", "quiet", "--set", slurmLauncher)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pid, err := waitFile(ctx, pause)
	if err != nil {
		r.cmd.Process.Kill()
		t.Fatalf("rank 1 never paused in the window: %v\n%s", err, r.stderr.String())
	}
	worker1, _ := strconv.Atoi(strings.TrimSpace(pid))
	exp := experimentID(t, res)
	if _, err := waitFile(ctx, filepath.Join(res, "raw", exp, ".completed_0")); err != nil {
		r.cmd.Process.Kill()
		t.Fatalf("rank 0 never completed: %v\n%s", err, r.stderr.String())
	}
	m := readManifest(t, res, exp)
	if m.Slurm == nil || m.Slurm.StepID == "" {
		r.cmd.Process.Kill()
		t.Fatalf("the running manifest names no Slurm step: %+v", m.Slurm)
	}
	step := m.Slurm.JobID + "." + m.Slurm.StepID
	if out, err := exec.Command("scancel", append(scancelArgs, step)...).CombinedOutput(); err != nil {
		r.cmd.Process.Kill()
		t.Fatalf("scancel %s: %v\n%s", step, err, out)
	}
	code := r.wait(t, 2*time.Minute)
	if code != 1 {
		t.Errorf("run exited %d after scancel of its step, want 1\nstderr:\n%s", code, r.stderr.String())
	}
	if !strings.Contains(r.stderr.String(), "rank 1") {
		t.Errorf("the failure does not name rank 1:\n%s", r.stderr.String())
	}
	if m := readManifest(t, res, exp); m.State != "interrupted" && m.State != "failed" {
		t.Errorf("manifest state %q, want interrupted or failed", m.State)
	}
	raw := readRaw(t, res, exp, 0)
	if raw.Workload.Requests != 8 {
		t.Errorf("rank 0's raw result has %d requests, want 8", raw.Workload.Requests)
	}
	if _, err := os.Stat(filepath.Join(res, "raw", exp, ".completed_0")); err != nil {
		t.Errorf("rank 0 has no completion marker: %v", err)
	}
	// Nothing left: the worker, its plugins, the step.
	deadline := time.Now().Add(30 * time.Second)
	for (syscall.Kill(worker1, 0) == nil || len(pluginProcesses()) > 0) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if syscall.Kill(worker1, 0) == nil {
		t.Errorf("rank 1's worker (pid %d) is still alive", worker1)
	}
	if left := pluginProcesses(); len(left) > 0 {
		t.Errorf("plugin processes left: %v", left)
	}
	if out, _ := exec.Command("squeue", "-h", "-s", "-j", m.Slurm.JobID).CombinedOutput(); strings.Contains(string(out), step+" ") {
		t.Errorf("step %s still listed:\n%s", step, out)
	}
	strict := lemctl(t, nil, "aggregate", exp, "--plugin-dir", pluginDir, "--results-dir", res)
	if code := strict.wait(t, time.Minute); code != 1 {
		t.Errorf("strict aggregate exited %d, want 1:\n%s", code, strict.stderr.String())
	}
	partial := lemctl(t, nil, "aggregate", exp, "--no-strict", "--plugin-dir", pluginDir, "--results-dir", res)
	if code := partial.wait(t, time.Minute); code != 1 {
		t.Errorf("--no-strict aggregate exited %d, want 1 (partial)\n%s", code, partial.stderr.String())
	}
	if agg := readAggregated(t, res, exp); !agg.Partial || agg.Workload.Requests != 8 {
		t.Errorf("partial aggregate: partial=%v requests=%d", agg.Partial, agg.Workload.Requests)
	}
}

// outsideSlurm runs lemctl ARGS with no SLURM_* variable in its environment.
func outsideSlurm(t *testing.T, args ...string) *run {
	t.Helper()
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLURM_") {
			env = append(env, kv)
		}
	}
	r := &run{}
	r.cmd = exec.Command(lemctlBin, args...)
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	r.cmd.Env = append(env, "XDG_CACHE_HOME="+t.TempDir())
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestSlurmSubmitAndAttach: outside an allocation with launch.slurm.submit = true, run submits
// itself with sbatch and prints the job id; `lemctl run --attach JOBID` follows the job to its
// end, shows the run's summary and exits with the run's code; the results are the job's.
func TestSlurmSubmitAndAttach(t *testing.T) {
	needSlurm(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "e.toml")
	if err := os.WriteFile(cfg, []byte(experiment("submitted", 2, noMeters)), 0o644); err != nil {
		t.Fatal(err)
	}
	res := filepath.Join(dir, "results")
	r := outsideSlurm(t, "run", cfg, "--plugin-dir", pluginDir, "--results-dir", res, "--progress", "quiet",
		"--set", slurmLauncher, "--set", "launch.slurm.submit=true")
	if code := r.wait(t, time.Minute); code != 0 {
		t.Fatalf("submit exited %d\n%s", code, r.stderr.String())
	}
	f := strings.Fields(r.stdout.String())
	if len(f) < 4 || f[0] != "submitted" || f[2] != "job" {
		t.Fatalf("submit printed %q, want `submitted Slurm job N …`", r.stdout.String())
	}
	job := f[3]
	a := outsideSlurm(t, "run", "--attach", job)
	if code := a.wait(t, 5*time.Minute); code != 0 {
		t.Fatalf("--attach %s exited %d\nstdout:\n%s\nstderr:\n%s", job, code, a.stdout.String(), a.stderr.String())
	}
	exp := experimentID(t, res)
	if !strings.Contains(a.stdout.String(), "experiment "+exp) || !strings.Contains(a.stderr.String(), "COMPLETED") {
		t.Errorf("--attach shows no summary of %s or no end state:\nstdout:\n%s\nstderr:\n%s", exp, a.stdout.String(), a.stderr.String())
	}
	if m := readManifest(t, res, exp); m.State != "completed" || m.Slurm == nil || m.Slurm.JobID != job {
		t.Errorf("manifest: state %q, slurm %+v; want completed in job %s", m.State, m.Slurm, job)
	}
	if agg := readAggregated(t, res, exp); agg.Workload.Requests != 16 || len(agg.Ranks) != 2 {
		t.Errorf("aggregate: %d requests over ranks %v, want 16 over 2", agg.Workload.Requests, agg.Ranks)
	}
}

// TestSlurmOutsideAllocation: launch.launcher = "slurm" without an allocation is a usage error
// (exit 2) that says how to get one, and nothing is written.
func TestSlurmOutsideAllocation(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "e.toml")
	if err := os.WriteFile(cfg, []byte(experiment("outside", 2, noMeters)), 0o644); err != nil {
		t.Fatal(err)
	}
	res := filepath.Join(dir, "results")
	r := outsideSlurm(t, "run", cfg, "--plugin-dir", pluginDir, "--results-dir", res, "--set", slurmLauncher)
	if code := r.wait(t, time.Minute); code != 2 || !strings.Contains(r.stderr.String(), "salloc") || !strings.Contains(r.stderr.String(), "launch.slurm.submit") {
		t.Errorf("exit %d, want 2 saying how to get an allocation:\n%s", code, r.stderr.String())
	}
	if _, err := os.Stat(res); err == nil {
		t.Errorf("a refused run wrote %s", res)
	}
}

// TestSlurmInterrupt: Ctrl-C (SIGINT) to `lemctl run` under Slurm stops every task through its
// connection, as locally: exit 130, manifest interrupted, no worker or plugin left.
func TestSlurmInterrupt(t *testing.T) {
	needSlurm(t)
	dir := t.TempDir()
	pause := filepath.Join(dir, "paused")
	cfg := filepath.Join(dir, "e.toml")
	if err := os.WriteFile(cfg, []byte(experiment("slurm-interrupted", 2, noMeters)), 0o644); err != nil {
		t.Fatal(err)
	}
	res := filepath.Join(dir, "results")
	r := salloc(t, []string{"LEM_TEST_PAUSE=window:0:" + pause}, 2, "run", cfg, "--plugin-dir", pluginDir, "--results-dir", res, "--progress", "quiet", "--set", slurmLauncher)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pid, err := waitFile(ctx, pause)
	if err != nil {
		r.cmd.Process.Kill()
		t.Fatalf("rank 0 never paused: %v\n%s", err, r.stderr.String())
	}
	worker0, _ := strconv.Atoi(strings.TrimSpace(pid))
	exp := experimentID(t, res)
	m := readManifest(t, res, exp)
	if err := syscall.Kill(m.LemctlPID, syscall.SIGINT); err != nil {
		r.cmd.Process.Kill()
		t.Fatalf("SIGINT lemctl (pid %d): %v", m.LemctlPID, err)
	}
	if code := r.wait(t, 2*time.Minute); code != 130 {
		t.Fatalf("salloc lemctl run exited %d after SIGINT, want 130\nstderr:\n%s", code, r.stderr.String())
	}
	if m := readManifest(t, res, exp); m.State != "interrupted" {
		t.Errorf("manifest state %q, want interrupted", m.State)
	}
	deadline := time.Now().Add(30 * time.Second)
	for (syscall.Kill(worker0, 0) == nil || len(pluginProcesses()) > 0) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if syscall.Kill(worker0, 0) == nil {
		t.Errorf("rank 0's worker (pid %d) is still alive", worker0)
	}
	if left := pluginProcesses(); len(left) > 0 {
		t.Errorf("plugin processes left: %v", left)
	}
}

// TestSlurmRunsTheCPUExample: the issue's own command, `salloc -n 2 lemctl run
// examples/cpu-2workers.toml --set launch.launcher="slurm"`, on ONNX Runtime with gpt2-tiny (a
// short window and few prompts set on the command line): two raw results with distinct ranks and
// the job id, the aggregate the sum of the raws.
func TestSlurmRunsTheCPUExample(t *testing.T) {
	needSlurm(t)
	plugins := productPlugins(t, "onnx", "fsstore")
	res := filepath.Join(t.TempDir(), "results")
	r := salloc(t, nil, 2, "run", filepath.Join(repoRoot, "examples", "cpu-2workers.toml"), "--plugin-dir", plugins, "--results-dir", res,
		"--progress", "quiet", "--set", slurmLauncher, "--set", "workload.min_window_s=0", "--set", "workload.prompts=8", "--set", "workload.max_new_tokens=8")
	if code := r.wait(t, 5*time.Minute); code != 0 {
		t.Fatalf("salloc lemctl run examples/cpu-2workers.toml exited %d\nstderr:\n%s", code, r.stderr.String())
	}
	if !strings.Contains(r.stderr.String(), "launch.pin_cpus is not applied under the Slurm launcher") {
		t.Errorf("the example's pin_cpus = true is dropped without a word:\n%s", r.stderr.String())
	}
	exp := experimentID(t, res)
	m := readManifest(t, res, exp)
	agg := readAggregated(t, res, exp)
	var requests, out int64
	for rank := 0; rank < 2; rank++ {
		raw := readRaw(t, res, exp, rank)
		if raw.Rank != rank || raw.Slurm == nil || m.Slurm == nil || raw.Slurm.JobID != m.Slurm.JobID {
			t.Errorf("raw %d: rank %d, slurm %+v (manifest %+v)", rank, raw.Rank, raw.Slurm, m.Slurm)
		}
		requests += raw.Workload.Requests
		out += raw.Workload.OutputTokens
	}
	if agg.Workload.Requests != requests || agg.Workload.OutputTokens != out || out != 8*8 {
		t.Errorf("aggregate %d requests / %d output tokens, raws %d / %d, want 8 prompts × 8 tokens", agg.Workload.Requests, agg.Workload.OutputTokens, requests, out)
	}
}

// TestSlurmResultsNotShared: inside an allocation whose tasks cannot read the run directory (a
// stand-in srun on PATH whose task 1 cannot open the token file; no Slurm needed), run stops with
// exit 2 naming the results directory problem and the task, before any worker starts.
func TestSlurmResultsNotShared(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	started := filepath.Join(dir, "step-started")
	srun := `#!/bin/sh
for a; do f=$a; done
case "$*" in
*" cat "*) echo "0: $(cat "$f")"; echo "1: cat: $f: No such file or directory"; exit 1 ;;
*) touch ` + started + `; exit 1 ;;
esac
`
	if err := os.WriteFile(filepath.Join(bin, "srun"), []byte(srun), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "e.toml")
	if err := os.WriteFile(cfg, []byte(experiment("not-shared", 2, noMeters)), 0o644); err != nil {
		t.Fatal(err)
	}
	res := filepath.Join(dir, "results")
	r := lemctl(t, []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "SLURM_JOB_ID=999", "SLURM_NTASKS=2"},
		"run", cfg, "--plugin-dir", pluginDir, "--results-dir", res, "--progress", "quiet", "--set", slurmLauncher)
	if code := r.wait(t, 2*time.Minute); code != 2 {
		t.Fatalf("exit %d, want 2\nstderr:\n%s", code, r.stderr.String())
	}
	for _, want := range []string{"not shared with every node", "task(s) 1", "No such file"} {
		if !strings.Contains(r.stderr.String(), want) {
			t.Errorf("stderr does not say %q:\n%s", want, r.stderr.String())
		}
	}
	if _, err := os.Stat(started); err == nil {
		t.Error("the worker step was started after the check failed")
	}
	if runs, _ := filepath.Glob(filepath.Join(res, "runs", "*", "manifest.json")); len(runs) > 0 {
		t.Errorf("a refused run wrote a manifest: %v", runs)
	}
}
