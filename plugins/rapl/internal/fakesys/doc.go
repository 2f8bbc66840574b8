// Package fakesys writes a fake powercap tree whose RAPL counters advance at known powers, for
// tests that run the real plugin against sysfs_root: the live test of package rapl and the
// fake-powercap command that end-to-end tests of lemctl run beside it.
//
// Counters follow the monotonic clock (value = start + watts × elapsed, modulo the range + 1,
// with an optional reset to a small value), and every file is replaced atomically (temp file +
// rename), so a reader never sees half a number. It must never be used to report energy: it
// simulates hardware, it does not measure it.
package fakesys
