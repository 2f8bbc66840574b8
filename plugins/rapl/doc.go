// Package rapl is lemctl's energy plugin for CPU package, DRAM and platform (psys) energy read
// from the Linux powercap interface (<sysfs_root>/class/powercap, the intel_rapl_msr,
// intel_rapl_mmio and AMD RAPL drivers).
//
// It discovers the RAPL zones, reports each as a domain with a stable id ("rapl:" + the zone's
// directory name, e.g. "rapl:intel-rapl:0:2"), and samples their energy_uj counters through the
// sdk's sampler, which corrects wraps at max_energy_range_uj and flags resets. The poll interval
// is never longer than half the time the fastest-wrapping zone takes to wrap at its maximum
// power (docs/methodology.md, wraps). Everything is read through an fs.FS, so tests inject fake trees
// and permission errors.
//
// It must never:
//   - report a zone it cannot read as zero energy: no powercap directory, no zones, a missing
//     energy_uj or permission denied (root-only since CVE-2020-8694) make the domain unavailable,
//     with the reason and how to grant access;
//   - report nested domains as if they added up: package and DRAM are the primary domains, psys
//     is an alternative total, core and uncore are detail inside a package (rule 4);
//   - report an intel-rapl-mmio zone that duplicates an intel-rapl zone;
//   - write to standard output (go-plugin's handshake channel); logs go to stderr via hclog.
package rapl
