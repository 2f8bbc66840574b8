// Package sysinfo reads the facts about the host a result must carry: host identity (hostname +
// boot id), the environment snapshot (CPU model, frequency governor, cgroup CPU quota,
// container/VM) and a process's CPU time from /proc/<pid>/task/*/schedstat (nanoseconds;
// /proc/<pid>/stat counts 10 ms ticks, too coarse for a meter's overhead).
//
// Everything is read through an fs.FS rooted at "/" so tests run on fixture trees. A fact that
// cannot be read is reported as "unknown (<reason>)", never guessed.
package sysinfo
