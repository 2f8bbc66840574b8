package sysinfo

import (
	"os"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"
)

func TestEnvironmentFromFixture(t *testing.T) {
	fsys := fstest.MapFS{
		"proc/cpuinfo":                   {Data: []byte("processor\t: 0\nmodel name\t: Test CPU @ 2.0GHz\nflags\t\t: fpu sse hypervisor avx\n")},
		"proc/meminfo":                   {Data: []byte("MemTotal:       1024 kB\n")},
		"proc/sys/kernel/random/boot_id": {Data: []byte("abc-123\n")},
		"sys/devices/system/cpu/cpufreq/policy0/scaling_governor": {Data: []byte("performance\n")},
		"sys/devices/system/cpu/cpufreq/policy1/scaling_governor": {Data: []byte("powersave\n")},
		"sys/fs/cgroup/cpu.max":                                   {Data: []byte("150000 100000\n")},
		"proc/1/cgroup":                                           {Data: []byte("0::/kubepods/pod1\n")},
		"sys/class/dmi/id/sys_vendor":                             {Data: []byte("QEMU\n")},
		"proc/42/task/42/schedstat":                               {Data: []byte("1000 5 6\n")},
		"proc/42/task/43/schedstat":                               {Data: []byte("2500 5 6\n")},
	}
	r := &Reader{FS: fsys, Hostname: func() (string, error) { return "box", nil }}
	env := r.Environment()
	want := map[string]string{"cpu_model": "Test CPU @ 2.0GHz", "governor": "performance,powersave", "cgroup_cpu": "1.5 CPUs",
		"container": "kubepods", "virtualization": "vm (QEMU)", "memory_total_bytes": "1048576"}
	for k, v := range want {
		if !strings.HasPrefix(env[k], v) {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	h, err := r.Host()
	if err != nil || h.BootID != "abc-123" || h.Hostname != "box" {
		t.Errorf("Host() = %+v, %v", h, err)
	}
	ns, err := r.CPUTimeNS(42)
	if err != nil || ns != 3500 {
		t.Errorf("CPUTimeNS = %d, %v; want 3500", ns, err)
	}
}

func TestMissingFactsSayWhy(t *testing.T) {
	r := &Reader{FS: fstest.MapFS{}, Hostname: os.Hostname}
	env := r.Environment()
	for _, k := range []string{"cpu_model", "governor", "cgroup_cpu"} {
		if !strings.HasPrefix(env[k], "unknown (") {
			t.Errorf("%s = %q, want unknown with a reason", k, env[k])
		}
	}
	if _, err := r.CPUTimeNS(1); err == nil {
		t.Error("CPUTimeNS of a missing pid must fail")
	}
}

func TestRealMachine(t *testing.T) {
	r := Default()
	if _, err := r.Host(); err != nil {
		t.Fatal(err)
	}
	ns, err := r.CPUTimeNS(os.Getpid())
	if err != nil || ns <= 0 {
		t.Errorf("own CPU time = %d, %v", ns, err)
	}
}

// launch.threads = 0 means the usable cores: the affinity mask capped by the cgroup quota.
func TestUsableCPUsRespectsTheCgroupQuota(t *testing.T) {
	n := runtime.NumCPU()
	tests := []struct {
		name  string
		files fstest.MapFS
		want  int
	}{
		{"v2 half a CPU", fstest.MapFS{"sys/fs/cgroup/cpu.max": {Data: []byte("50000 100000\n")}}, 1},
		{"v2 1.5 CPUs rounds up", fstest.MapFS{"sys/fs/cgroup/cpu.max": {Data: []byte("150000 100000\n")}}, min(n, 2)},
		{"v2 no quota", fstest.MapFS{"sys/fs/cgroup/cpu.max": {Data: []byte("max 100000\n")}}, n},
		{"v2 more than the machine", fstest.MapFS{"sys/fs/cgroup/cpu.max": {Data: []byte("100000000 100000\n")}}, n},
		{"v1 one CPU", fstest.MapFS{"sys/fs/cgroup/cpu/cpu.cfs_quota_us": {Data: []byte("100000\n")},
			"sys/fs/cgroup/cpu/cpu.cfs_period_us": {Data: []byte("100000\n")}}, 1},
		{"v1 no quota", fstest.MapFS{"sys/fs/cgroup/cpu/cpu.cfs_quota_us": {Data: []byte("-1\n")},
			"sys/fs/cgroup/cpu/cpu.cfs_period_us": {Data: []byte("100000\n")}}, n},
		{"no cgroup files", fstest.MapFS{}, n},
	}
	for _, tc := range tests {
		r := &Reader{FS: tc.files}
		if got := r.UsableCPUs(); got != tc.want {
			t.Errorf("%s: UsableCPUs() = %d, want %d", tc.name, got, tc.want)
		}
	}
}
