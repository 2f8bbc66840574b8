// Package launch starts a run's workers and coordinates them. A Launcher starts one worker per
// device slot; the parent talks to each worker over a control channel of JSON lines (barriers,
// progress, stop), so the three barriers of docs/architecture.md — all start the idle baseline
// together, none loads a model until every baseline has ended, the measured windows start
// together — hold for any launcher. The local launcher runs `lemctl worker` subprocesses, each in
// its own process group with a parent-death signal. The Slurm launcher (slurm.go) runs one srun
// step whose tasks (slurmtask.go) connect back over TCP, authenticated by a per-run secret that
// only the spec files carry, and run their worker locally; the worker only sees a Spec and a
// control channel either way. Nothing here may put the secret on a command line or in the
// environment.
//
// A worker that fails before a barrier releases the others with an error, never a hang; one that
// fails later is reported at once (Coordinator.OnFailure) and the others are stopped. Workers
// send heartbeats naming the plugin call in flight; with a StallTimeout the coordinator kills a
// worker whose call makes no progress for that long (docs/reliability.md, "Watchdog"). The
// coordinator never decides a run's result: it reports outcomes, the caller records them.
package launch
