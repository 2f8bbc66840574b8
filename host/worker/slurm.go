package worker

import (
	"os"
	"strconv"

	"github.com/lemctl/lemctl/host/launch"
	"github.com/lemctl/lemctl/host/results"
)

// slurmTask is the job step and task this worker runs as, from its spec and the environment
// srun gives every task; nil when the worker was not started by the Slurm launcher.
func slurmTask(spec *launch.Spec, getenv func(string) string) *results.SlurmJob {
	if spec.Slurm == nil {
		return nil
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	j := &results.SlurmJob{JobID: spec.Slurm.JobID, StepID: getenv("SLURM_STEP_ID"), Node: getenv("SLURMD_NODENAME")}
	if j.JobID == "" {
		j.JobID = getenv("SLURM_JOB_ID")
	}
	if n, err := strconv.Atoi(getenv("SLURM_PROCID")); err == nil {
		j.ProcID = &n
	}
	if n, err := strconv.Atoi(getenv("SLURM_LOCALID")); err == nil {
		j.LocalID = &n
	}
	return j
}
