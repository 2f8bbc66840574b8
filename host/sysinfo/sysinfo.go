package sysinfo

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"
)

// Reader reads host facts from a filesystem rooted at "/".
type Reader struct {
	FS fs.FS
	// Hostname returns the host name (os.Hostname by default).
	Hostname func() (string, error)
}

// Default reads the real machine.
func Default() *Reader { return &Reader{FS: os.DirFS("/"), Hostname: os.Hostname} }

func (r *Reader) read(name string) (string, error) {
	b, err := fs.ReadFile(r.FS, strings.TrimPrefix(name, "/"))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func unknown(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "unknown (not present)"
	case errors.Is(err, fs.ErrPermission):
		return "unknown (permission denied)"
	}
	return "unknown (" + err.Error() + ")"
}

// Host identifies this boot of the machine.
type Host struct {
	Hostname string
	BootID   string
}

// Host returns the hostname and /proc/sys/kernel/random/boot_id.
func (r *Reader) Host() (Host, error) {
	hn, err := r.Hostname()
	if err != nil {
		return Host{}, fmt.Errorf("hostname: %w", err)
	}
	boot, err := r.read("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return Host{}, fmt.Errorf("read boot id: %w", err)
	}
	return Host{Hostname: hn, BootID: boot}, nil
}

// Environment returns the host facts of the environment snapshot.
func (r *Reader) Environment() map[string]string {
	f := map[string]string{
		"os":             runtime.GOOS,
		"arch":           runtime.GOARCH,
		"logical_cpus":   strconv.Itoa(runtime.NumCPU()),
		"cpu_model":      r.cpuModel(),
		"governor":       r.governor(),
		"cgroup_cpu":     r.cgroupCPU(),
		"container":      r.container(),
		"virtualization": r.virtualization(),
	}
	if k, err := r.read("/proc/sys/kernel/osrelease"); err == nil {
		f["kernel"] = k
	}
	if m, err := r.memTotal(); err == nil {
		f["memory_total_bytes"] = strconv.FormatInt(m, 10)
	}
	return f
}

func (r *Reader) cpuModel() string {
	s, err := r.read("/proc/cpuinfo")
	if err != nil {
		return unknown(err)
	}
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown (no model name in /proc/cpuinfo)"
}

func (r *Reader) governor() string {
	entries, err := fs.ReadDir(r.FS, "sys/devices/system/cpu/cpufreq")
	if err != nil {
		return unknown(err)
	}
	govs := map[string]bool{}
	var list []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "policy") {
			continue
		}
		g, err := r.read(path.Join("sys/devices/system/cpu/cpufreq", e.Name(), "scaling_governor"))
		if err == nil && !govs[g] {
			govs[g] = true
			list = append(list, g)
		}
	}
	if len(list) == 0 {
		return "unknown (no cpufreq policy)"
	}
	return strings.Join(list, ",")
}

// cgroupCPU describes the cgroup v2 (or v1) CPU quota of this process.
func (r *Reader) cgroupCPU() string {
	if s, err := r.read("/sys/fs/cgroup/cpu.max"); err == nil {
		q, p, _ := strings.Cut(s, " ")
		if q == "max" {
			return "unlimited (cgroup v2)"
		}
		if cpus, ok := ratio(q, p); ok {
			return fmt.Sprintf("%.3g CPUs (cgroup v2 cpu.max %s)", cpus, s)
		}
		return "cpu.max " + s
	}
	q, err := r.read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
	if err != nil {
		return unknown(err)
	}
	p, _ := r.read("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
	if q == "-1" {
		return "unlimited (cgroup v1)"
	}
	if cpus, ok := ratio(q, p); ok {
		return fmt.Sprintf("%.3g CPUs (cgroup v1 quota %s / period %s)", cpus, q, p)
	}
	return "quota " + q
}

// ratio is a cgroup quota ÷ its period, in CPUs; false unless both are positive numbers.
func ratio(quota, period string) (float64, bool) {
	q, err1 := strconv.ParseFloat(quota, 64)
	p, err2 := strconv.ParseFloat(period, 64)
	return q / p, err1 == nil && err2 == nil && q > 0 && p > 0
}

// CPUQuota returns how many CPUs the cgroup quota of this process allows (cgroup v2 cpu.max,
// else v1 cfs_quota_us / cfs_period_us); false when there is no quota or it cannot be read.
func (r *Reader) CPUQuota() (float64, bool) {
	if s, err := r.read("/sys/fs/cgroup/cpu.max"); err == nil {
		q, p, _ := strings.Cut(s, " ")
		return ratio(q, p)
	}
	q, err := r.read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
	if err != nil {
		return 0, false
	}
	p, _ := r.read("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
	return ratio(q, p)
}

// UsableCPUs is how many CPUs this process can use: those its affinity mask allows
// (runtime.NumCPU), capped by the cgroup quota rounded up, and at least 1.
func (r *Reader) UsableCPUs() int {
	n := runtime.NumCPU()
	if cpus, ok := r.CPUQuota(); ok {
		n = min(n, int(math.Ceil(cpus)))
	}
	return max(1, n)
}

func (r *Reader) container() string {
	if _, err := fs.Stat(r.FS, ".dockerenv"); err == nil {
		return "docker"
	}
	if _, err := fs.Stat(r.FS, "run/.containerenv"); err == nil {
		return "podman"
	}
	if s, err := r.read("/proc/1/cgroup"); err == nil {
		for _, k := range []string{"docker", "kubepods", "containerd", "lxc"} {
			if strings.Contains(s, k) {
				return k
			}
		}
	}
	return "none detected"
}

func (r *Reader) virtualization() string {
	s, err := r.read("/proc/cpuinfo")
	if err == nil {
		for _, line := range strings.Split(s, "\n") {
			k, v, ok := strings.Cut(line, ":")
			if ok && strings.TrimSpace(k) == "flags" {
				if strings.Contains(" "+v+" ", " hypervisor ") {
					if vendor, err := r.read("/sys/class/dmi/id/sys_vendor"); err == nil && vendor != "" {
						return "vm (" + vendor + ")"
					}
					return "vm"
				}
				return "none detected"
			}
		}
	}
	return "unknown"
}

func (r *Reader) memTotal() (int64, error) {
	s, err := r.read("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no MemTotal")
}

// CPUTimeNS returns the CPU time (on-CPU nanoseconds) a process has used so far, summed over its
// threads from /proc/<pid>/task/*/schedstat. Threads that exited are not counted; sample at
// both ends of a window and subtract.
func (r *Reader) CPUTimeNS(pid int) (int64, error) {
	dir := fmt.Sprintf("proc/%d/task", pid)
	tasks, err := fs.ReadDir(r.FS, dir)
	if err != nil {
		return 0, fmt.Errorf("cpu time of pid %d: %w", pid, err)
	}
	var total int64
	for _, t := range tasks {
		b, err := fs.ReadFile(r.FS, path.Join(dir, t.Name(), "schedstat"))
		if err != nil {
			continue // the thread exited
		}
		f := bytes.Fields(b)
		if len(f) < 1 {
			continue
		}
		ns, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err == nil {
			total += ns
		}
	}
	return total, nil
}

// PeakRSSBytes returns a process's peak resident set size (VmHWM in /proc/<pid>/status).
func (r *Reader) PeakRSSBytes(pid int) (int64, error) {
	s, err := r.read(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("peak memory of pid %d: %w", pid, err)
	}
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("peak memory of pid %d: no VmHWM in status", pid)
}

// ProcessStart returns when process pid started, in clock ticks after boot (field 22 of
// /proc/<pid>/stat): with the boot id it tells a process from a later one that reused its pid.
func (r *Reader) ProcessStart(pid int) (uint64, error) {
	s, err := r.read(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("start time of pid %d: %w", pid, err)
	}
	// The command (field 2) is in parentheses and may hold spaces: count after its last ')'.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("start time of pid %d: malformed stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("start time of pid %d: stat has %d fields after the command", pid, len(f))
	}
	return strconv.ParseUint(f[19], 10, 64) // field 22 is the 20th after the command
}

// Running reports whether pid is a live process that started at start (ticks after boot, as
// ProcessStart returns; 0: any start), on this boot. A zombie counts as gone.
func (r *Reader) Running(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	s, err := r.read(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		if f := strings.Fields(s[i+1:]); len(f) > 0 && (f[0] == "Z" || f[0] == "X") {
			return false
		}
	}
	if start == 0 {
		return true
	}
	got, err := r.ProcessStart(pid)
	return err == nil && got == start
}
