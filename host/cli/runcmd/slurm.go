package runcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/config"
	"github.com/lemctl/lemctl/host/launch"
	"github.com/lemctl/lemctl/host/results"
)

// slurmRun is a run under launch.launcher = "slurm" (docs/slurm.md): inside the allocation
// $SLURM_JOB_ID, with one task per rank; the device slots of one node are NodeSlots.
type slurmRun struct {
	jobID     string
	port      int
	nodeSlots []launch.NodeSlot
	host      string
}

// slurmOutside is what run does with launch.launcher = "slurm" when it is not inside an
// allocation: a usage error saying how to get one (submit = false), or the sbatch submission.
// done is false when the run goes on here (local launcher, or inside an allocation).
func slurmOutside(ctx context.Context, env *cliutil.Factory, cfg *config.Config, getenv func(string) string) (done bool, err error) {
	if cfg.Launch.Launcher != "slurm" || getenv("SLURM_JOB_ID") != "" {
		return false, nil
	}
	if cfg.Launch.Slurm.Submit {
		return true, submit(ctx, env, cfg)
	}
	return true, cliutil.Usagef("launch.launcher = \"slurm\": not inside a Slurm allocation ($SLURM_JOB_ID is unset): run `salloc --ntasks N lemctl run ...` or `lemctl run` in an sbatch script, N being the number of workers (docs/slurm.md), or set launch.slurm.submit = true to submit this run with sbatch")
}

// newSlurmRun checks the allocation and expands the slots of one node to the allocation's tasks:
// rank r gets slots[r mod len(slots)] until its task picks its own by SLURM_LOCALID; nil when
// the launcher is local.
func newSlurmRun(cfg *config.Config, slots []slot, getenv func(string) string) (*slurmRun, []slot, error) {
	if cfg.Launch.Launcher != "slurm" {
		return nil, slots, nil
	}
	job := getenv("SLURM_JOB_ID")
	n, err := strconv.Atoi(getenv("SLURM_NTASKS"))
	if err != nil || n < 1 {
		return nil, nil, cliutil.Usagef("launch.launcher = \"slurm\": the allocation %s sets no task count ($SLURM_NTASKS = %q): allocate with --ntasks (salloc/sbatch -n N), one task per worker", job, getenv("SLURM_NTASKS"))
	}
	host, _ := os.Hostname()
	sr := &slurmRun{jobID: job, port: cfg.Launch.Slurm.Port, host: host}
	for _, s := range slots {
		sr.nodeSlots = append(sr.nodeSlots, launch.NodeSlot{Device: s.device, Threads: s.threads})
	}
	out := make([]slot, n)
	for r := range out {
		out[r] = slots[r%len(slots)]
	}
	return sr, out, nil
}

// attach gives every spec its Slurm section (the launcher adds the address and secret).
func (sr *slurmRun) attach(specs []*launch.Spec) {
	if sr == nil {
		return
	}
	for _, s := range specs {
		s.Slurm = &launch.SlurmSpec{JobID: sr.jobID, NodeSlots: sr.nodeSlots, ParentHost: sr.host}
	}
}

// launch checks that the results directory is shared with every task (exit 2 if not), then
// starts the step and records the job, the step and where each rank runs in the manifest.
func (sr *slurmRun) launch(ctx context.Context, p *plan, manifest *results.Manifest) ([]launch.Worker, *launch.Slurm, error) {
	env := p.env
	sl := &launch.Slurm{Executable: env.Executable, RunDir: p.runDir, JobID: sr.jobID, Port: sr.port,
		Log: func(format string, args ...any) { env.Logger.Info(fmt.Sprintf(format, args...)) }}
	if err := sl.CheckShared(ctx, len(p.specs)); err != nil {
		_ = os.Remove(p.runDir)
		if errors.Is(err, launch.ErrNotShared) {
			return nil, nil, cliutil.Usage(err)
		}
		return nil, nil, cliutil.Failed(err)
	}
	workers, err := sl.LaunchAll(ctx, p.specs)
	if err != nil {
		return nil, nil, cliutil.Failed(err)
	}
	manifest.Slurm = &results.SlurmJob{JobID: sr.jobID, StepID: sl.StepID(workers)}
	for i, w := range workers {
		h := results.Host{}
		if hw, ok := w.(interface{ Host() (string, string) }); ok {
			h.Hostname, h.BootID = hw.Host()
		}
		manifest.Ranks = append(manifest.Ranks, results.ManifestRank{Rank: w.Rank(), Host: h,
			Device: p.specs[i].Device.Result(nil), PID: w.Pid(), LogPath: w.LogPath(), State: results.StateRunning})
	}
	return workers, sl, nil
}

// slurmJobLine names the job and step in the messages of an interrupted or failed Slurm run.
func slurmJobLine(m *results.Manifest) string {
	if m.Slurm == nil {
		return ""
	}
	return strings.TrimSpace(fmt.Sprintf(" (Slurm job %s, step %s)", m.Slurm.JobID, m.Slurm.StepID))
}

// submit submits this same `lemctl run` (its arguments unchanged) as a batch job of as many
// tasks as the config has device slots on one node, and prints the job id. The job's
// `lemctl run` finds itself inside the allocation and launches as usual.
func submit(ctx context.Context, env *cliutil.Factory, cfg *config.Config) error {
	n := max(1, cfg.Launch.ProcessesPerDevice)
	if !cfg.Launch.Devices.IsCPU() && len(cfg.Launch.Devices) > 0 {
		n *= len(cfg.Launch.Devices)
	}
	args := []string{"--parsable", "--ntasks", strconv.Itoa(n), "--job-name", "lemctl-" + cfg.Name}
	if dir := env.ResultsDir; dir != "" {
		// The job's output goes next to its results; Slurm fails a job whose output directory
		// does not exist.
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return cliutil.Failed(fmt.Errorf("launch.slurm.submit: create the results directory for the job's output: %w", err))
		}
		args = append(args, "--output", strings.TrimRight(dir, "/")+"/slurm-%j.out")
	}
	wrap := []string{shellQuote(env.Executable)}
	for _, a := range os.Args[1:] {
		wrap = append(wrap, shellQuote(a))
	}
	args = append(args, "--wrap", strings.Join(wrap, " "))
	cmd := exec.CommandContext(ctx, "sbatch", args...)
	cmd.Stderr = env.Err
	out, err := cmd.Output()
	if err != nil {
		return cliutil.Failed(fmt.Errorf("launch.slurm.submit: sbatch %s: %w", strings.Join(args, " "), err))
	}
	job, _, _ := strings.Cut(strings.TrimSpace(string(out)), ";")
	fmt.Fprintf(env.Out, "submitted Slurm job %s (%d tasks); follow it with `lemctl run --attach %s`\n", job, n, job)
	return nil
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r == '=' || r == ':' || r == ',' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9'))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// terminalJobStates are the Slurm job states after which a job runs no more.
var terminalJobStates = map[string]bool{"COMPLETED": true, "FAILED": true, "CANCELLED": true, "TIMEOUT": true,
	"NODE_FAIL": true, "OUT_OF_MEMORY": true, "PREEMPTED": true, "BOOT_FAIL": true, "DEADLINE": true}

// attach follows the Slurm job of a submitted run (`lemctl run --attach JOBID`): it copies the
// job's output file to stdout as it grows, says when the job's state changes, and ends with the
// job: its exit code (that of the `lemctl run` inside it). Ctrl-C stops following, not the job.
func attach(ctx context.Context, env *cliutil.Factory, job string, poll time.Duration) error {
	if _, err := strconv.Atoi(job); err != nil {
		return cliutil.Usagef("--attach %s: a Slurm job id is a number (as `lemctl run` printed when it submitted the job)", job)
	}
	var off int64
	last := ""
	copyOut := func(path string) {
		if path == "" {
			return
		}
		f, err := os.Open(path)
		if err != nil {
			return
		}
		defer f.Close()
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return
		}
		n, _ := io.Copy(env.Out, f)
		off += n
	}
	for {
		out, err := exec.CommandContext(context.WithoutCancel(ctx), "scontrol", "show", "job", "-o", job).CombinedOutput()
		if err != nil {
			return cliutil.Failed(fmt.Errorf("--attach %s: scontrol show job: %s (a job that ended more than Slurm's MinJobAge ago is forgotten: its output stays in its output file)", job, strings.TrimSpace(string(out))))
		}
		f := jobFields(string(out))
		copyOut(f["StdOut"])
		if st := f["JobState"]; st != last {
			fmt.Fprintf(env.Err, "lemctl: Slurm job %s: %s\n", job, st)
			last = st
		}
		if terminalJobStates[f["JobState"]] {
			copyOut(f["StdOut"])
			code, _ := strconv.Atoi(strings.SplitN(f["ExitCode"], ":", 2)[0])
			if f["JobState"] == "COMPLETED" && code == 0 {
				return nil
			}
			if code == 0 {
				code = cliutil.ExitFailed
			}
			return cliutil.Exit(code, fmt.Errorf("Slurm job %s ended %s (exit code %s; its output: %s)", job, f["JobState"], f["ExitCode"], f["StdOut"]))
		}
		select {
		case <-ctx.Done():
			return cliutil.Exit(cliutil.ExitInterrupted, fmt.Errorf("stopped following Slurm job %s; it goes on (scancel %s stops it)", job, job))
		case <-time.After(poll):
		}
	}
}

// jobFields parses `scontrol show job -o`: space-separated Key=Value pairs.
func jobFields(s string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Fields(s) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	return out
}
