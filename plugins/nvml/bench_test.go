package nvml_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lemctl/lemctl/plugins/nvml"
	"github.com/lemctl/lemctl/sdk"
)

// processCPUNS sums the on-CPU time of every thread of pid from /proc/<pid>/task/*/schedstat
// (nanoseconds; /proc/<pid>/stat counts 10 ms ticks, too coarse for a sampler's share), and the
// number of times its threads were scheduled onto a CPU (each one a wake-up, mostly).
func processCPUNS(pid int) (cpuNS, runs int64, err error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, 0, fmt.Errorf("no schedstat for pid %d: %v", pid, err)
	}
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // a thread that exited
		}
		f := strings.Fields(string(b))
		if len(f) < 3 {
			continue
		}
		ns, err1 := strconv.ParseInt(f[0], 10, 64)
		n, err2 := strconv.ParseInt(f[2], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return 0, 0, fmt.Errorf("parse %s: %w", p, err)
		}
		cpuNS += ns
		runs += n
	}
	return cpuNS, runs, nil
}

// reportProcessCPU watches process pid for b.N seconds and reports its CPU share of one core,
// its CPU µs per second and its threads' runs per second.
func reportProcessCPU(b *testing.B, pid int) {
	b.Helper()
	cpu0, runs0, err := processCPUNS(pid)
	if err != nil {
		b.Fatal(err)
	}
	w0 := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		time.Sleep(time.Second)
	}
	b.StopTimer()
	cpu1, runs1, err := processCPUNS(pid)
	if err != nil {
		b.Fatal(err)
	}
	wall := time.Since(w0)
	b.ReportMetric(float64(cpu1-cpu0)/float64(wall)*100, "%cpu")
	b.ReportMetric(float64(cpu1-cpu0)/wall.Seconds()/1e3, "cpu-µs/s")
	b.ReportMetric(float64(runs1-runs0)/wall.Seconds(), "runs/s")
}

// BenchmarkSamplerOverhead measures the plugin process's CPU time per second of wall time while
// a session samples one simulated GPU (counter, instant and average power every interval; slow
// fields every 100 ms; processes every second). One op is one second of sampling. Goals: ≤ 0.2 %
// of one core at 100 ms and ≤ 1 % at 10 ms. Run with -benchtime=5x for a steadier figure.
func BenchmarkSamplerOverhead(b *testing.B) {
	for _, interval := range []time.Duration{0, 100 * time.Millisecond, 10 * time.Millisecond} {
		name := interval.String()
		if interval == 0 {
			name = "idle"
		}
		b.Run(name, func(b *testing.B) {
			l := startLive(b, "seg 0 1 300\n", nil)
			pid := l.c.Pid()
			ctx := context.Background()
			if _, err := l.c.Meter().Inventory(ctx); err != nil {
				b.Fatal(err)
			}
			var s *sdk.Session
			if interval > 0 {
				var err error
				if s, err = l.c.Meter().Start(ctx, sdk.StartRequest{Interval: interval}); err != nil {
					b.Fatal(err)
				}
			}
			time.Sleep(300 * time.Millisecond) // past the session's start-up work
			reportProcessCPU(b, pid)
			if s == nil {
				return
			}
			meas, err := l.c.Meter().Stop(ctx, s.ID)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(len(meas.Domains[0].Samples))/(float64(meas.StopMonoNS-meas.StartMonoNS)/1e9), "samples/s")
		})
	}
}

// BenchmarkWakeFloor is the machine's floor for the figure above: the CPU share of a process
// that does nothing but wake at the same intervals. go-ticker is a Go process (this one) on a
// time.Ticker; c is testdata/wakefloor/wakefloor.c, a C loop on clock_nanosleep, the cheapest
// sampler there is. On a virtualised machine a wake-up alone can cost tens of µs; read the
// sampler's figure against these.
func BenchmarkWakeFloor(b *testing.B) {
	for _, interval := range []time.Duration{100 * time.Millisecond, 10 * time.Millisecond} {
		b.Run("go-ticker/"+interval.String(), func(b *testing.B) {
			cpu := func() int64 {
				var ru unix.Rusage
				if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
					b.Fatal(err)
				}
				return ru.Utime.Nano() + ru.Stime.Nano()
			}
			tk := time.NewTicker(interval)
			defer tk.Stop()
			c0, w0 := cpu(), time.Now()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for end := time.Now().Add(time.Second); time.Now().Before(end); {
					<-tk.C
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(cpu()-c0)/float64(time.Since(w0))*100, "%cpu")
		})
		b.Run("c/"+interval.String(), func(b *testing.B) {
			cmd := exec.Command(wakeFloorBinary(b), strconv.FormatInt(int64(interval), 10))
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			time.Sleep(200 * time.Millisecond)
			reportProcessCPU(b, cmd.Process.Pid)
		})
	}
}

// wakeFloorBinary compiles testdata/wakefloor/wakefloor.c.
func wakeFloorBinary(b *testing.B) string {
	cc, err := exec.LookPath("gcc")
	if err != nil {
		b.Skipf("no gcc for the C wake floor: %v", err)
	}
	p := filepath.Join(b.TempDir(), "wakefloor")
	if out, err := exec.Command(cc, "-O2", "-Wall", "-o", p, filepath.Join("testdata", "wakefloor", "wakefloor.c")).CombinedOutput(); err != nil {
		b.Fatalf("build wakefloor: %v\n%s", err, out)
	}
	return p
}

// BenchmarkRead is the work of one fast reading (counter plus instant and average power of one
// simulated GPU, through the sampler), without the wake-up: the part of the overhead that is
// the plugin's own. The simulated library is loaded into the test process for it.
func BenchmarkRead(b *testing.B) {
	lib := fakeLibrary(b)
	sp := filepath.Join(b.TempDir(), "script.txt")
	if err := os.WriteFile(sp, []byte("seg 0 1 300\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	b.Setenv("LEM_FAKE_NVML_SCRIPT", sp)
	m := nvml.NewMeter(nvml.Options{})
	set := m.Settings()
	set.LibraryPath = lib
	if err := m.SetSettings(set); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	s, err := m.Start(ctx, sdk.StartRequest{Interval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.Mark(ctx, s.ID, "read"); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	meas, err := m.Stop(ctx, s.ID)
	if err != nil || !meas.Domains[0].Domain.Available {
		b.Fatalf("stop: %v %+v", err, meas)
	}
}
