// Command fake-powercap writes a powercap tree whose RAPL counters advance at known powers, so
// that end-to-end tests can run `lemctl run` or `lemctl measure` with the rapl plugin's
// sysfs_root pointed at it and compare the energy with power × window:
//
//	fake-powercap -root /tmp/sys -zone intel-rapl:0=package-0,50,262143328850 -zone intel-rapl:0:0=dram,5,65712999613 &
//	lemctl measure --set energy.rapl.sysfs_root=/tmp/sys … -- sleep 10
//
// It runs until SIGINT or SIGTERM (or -duration), prints the monotonic start time on stdout, and
// on exit the longest time its files stood stale (max_stale_ns=…): a starved fake holds an old
// value, then catches up, so power × window is only true to within power × that staleness.
// It is a test tool: it simulates hardware and must never be installed as a plugin (its name
// does not start with lem-plugin-, so discovery never picks it up).
package main
