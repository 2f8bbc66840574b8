package estimate

import (
	"fmt"
	"io/fs"
	"strconv"
	"strings"
)

// ClockTicksPerSecond is USER_HZ, the unit of the CPU times in /proc/<pid>/stat: 100 on every
// Linux architecture lemctl builds for (the kernel exports times in USER_HZ whatever its HZ).
const ClockTicksPerSecond = 100

// stat is what the plugin needs of /proc/<pid>/stat.
type stat struct {
	pid, ppid int
	// ticks is utime + stime + cutime + cstime: the CPU time of the process and of its children
	// it has already waited for, in clock ticks.
	ticks uint64
}

// readStat parses <fsys>/<pid>/stat: "pid (comm) state ppid … utime stime cutime cstime …";
// comm may contain spaces and parentheses, so the fields after the last ')' are used (state is
// field 3, ppid 4, utime 14, stime 15, cutime 16, cstime 17).
func readStat(fsys fs.FS, pid int) (stat, error) {
	b, err := fs.ReadFile(fsys, strconv.Itoa(pid)+"/stat")
	if err != nil {
		return stat{}, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return stat{}, fmt.Errorf("%d/stat: no command name in %q", pid, s)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return stat{}, fmt.Errorf("%d/stat: %d fields after the command name, want at least 15", pid, len(f))
	}
	st := stat{pid: pid}
	if st.ppid, err = strconv.Atoi(f[1]); err != nil {
		return stat{}, fmt.Errorf("%d/stat: ppid %q: %w", pid, f[1], err)
	}
	for _, x := range f[11:15] {
		v, err := strconv.ParseUint(x, 10, 64)
		if err != nil {
			return stat{}, fmt.Errorf("%d/stat: cpu time %q: %w", pid, x, err)
		}
		st.ticks += v
	}
	return st, nil
}

// treeTicks returns the CPU ticks of root and of every live descendant of it, leaving out the
// process skip (the plugin itself, whose sampling is overhead, reported apart) and its
// descendants; and the processes counted. Processes that vanish during the scan are skipped.
func treeTicks(fsys fs.FS, root, skip int) (ticks uint64, procs int, err error) {
	rs, err := readStat(fsys, root)
	if err != nil {
		return 0, 0, fmt.Errorf("the worker process %d: %w", root, err)
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return 0, 0, err
	}
	children := map[int][]stat{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == root {
			continue
		}
		st, err := readStat(fsys, pid)
		if err != nil {
			continue // exited since the listing, or not a process
		}
		children[st.ppid] = append(children[st.ppid], st)
	}
	queue := []stat{rs}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p.pid == skip {
			continue
		}
		ticks += p.ticks
		procs++
		queue = append(queue, children[p.pid]...)
		if procs > 1<<16 {
			return 0, 0, fmt.Errorf("more than %d processes under %d: a cycle in the process table", 1<<16, root)
		}
	}
	return ticks, procs, nil
}

// ticksToMicrojoules converts CPU ticks at watts per core into µJ: ticks ÷ USER_HZ seconds of
// one core × W × 1e6.
func ticksToMicrojoules(ticks uint64, wattsPerCore float64) uint64 {
	return uint64(float64(ticks) / ClockTicksPerSecond * wattsPerCore * 1e6)
}
