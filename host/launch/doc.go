// Package launch starts a run's workers and coordinates them. A Launcher starts one worker per
// device slot; the parent talks to each worker over a control channel of JSON lines (barriers,
// progress, stop), so the three barriers of docs/architecture.md — all start the idle baseline
// together, none loads a model until every baseline has ended, the measured windows start
// together — hold for any launcher. The local launcher runs `lemctl worker` subprocesses, each in
// its own process group with a parent-death signal; a Slurm launcher can be added without
// touching the worker, which only sees a Spec and a control channel.
//
// A worker that fails before a barrier releases the others with an error, never a hang.
package launch
