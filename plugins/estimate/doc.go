// Package estimate is lemctl's energy plugin for machines with no energy counter (cloud VMs,
// laptops without RAPL access): it estimates the CPU energy of the worker's processes as their
// CPU time × a per-core power, method estimate, confidence estimate (docs/estimate.md).
//
// The CPU time is read from <proc_root>/<pid>/stat (utime + stime, plus cutime + cstime of the
// children already reaped) for the worker (the plugin's parent, or the configured pid) and every
// live descendant of it except this plugin. The per-core power is watts_per_core from the
// configuration, else the entry of a small documented table keyed by the CPU model of
// <proc_root>/cpuinfo; with neither, the domain is unavailable and says how to set one.
//
// It must never:
//   - report an estimate as a measurement: its one domain is always method estimate, confidence
//     estimate, so the host raises energy_estimated and never adds it to measured energy;
//   - invent a per-core power: no configured value and no table entry make the domain
//     unavailable, with the reason;
//   - write to standard output (go-plugin's handshake channel); logs go to stderr via hclog.
package estimate
