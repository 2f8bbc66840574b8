// Package worker is one lemctl worker process: it runs the experiment lifecycle on one device
// slot — environment snapshot, idle baseline, model load, warmup, thermal wait, the measured
// window × repeats with the meters running, cooldown — computes its metrics, and stores its raw
// result and completion marker through the repository plugin. It talks to the parent only through
// the control channel (barriers, progress) and to everything else through plugins.
//
// It never aggregates and never reads another worker's result: that is the parent's job, late.
package worker
