package nvml_test

import (
	"context"
	"fmt"
	"os"
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
// (nanoseconds; /proc/<pid>/stat counts 10 ms ticks, too coarse for a sampler's share).
func processCPUNS(pid int) (int64, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("no schedstat for pid %d: %v", pid, err)
	}
	var sum int64
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // a thread that exited
		}
		f := strings.Fields(string(b))
		if len(f) < 1 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s: %w", p, err)
		}
		sum += ns
	}
	return sum, nil
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
			cpu0, err := processCPUNS(pid)
			if err != nil {
				b.Fatal(err)
			}
			w0 := time.Now()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				time.Sleep(time.Second)
			}
			b.StopTimer()
			cpu1, err := processCPUNS(pid)
			if err != nil {
				b.Fatal(err)
			}
			wall := time.Since(w0)
			share := float64(cpu1-cpu0) / float64(wall) * 100
			b.ReportMetric(share, "%cpu")
			b.ReportMetric(float64(cpu1-cpu0)/wall.Seconds()/1e3, "cpu-µs/s")
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

// BenchmarkTickerFloor is the machine's floor for the figure above: the CPU share of a Go
// process that does nothing but wake on a ticker at the same intervals. On a loaded or
// virtualised machine the wake-ups alone can cost more than the sampler's reads; read the
// sampler's figure against this one.
func BenchmarkTickerFloor(b *testing.B) {
	for _, interval := range []time.Duration{100 * time.Millisecond, 10 * time.Millisecond} {
		b.Run(interval.String(), func(b *testing.B) {
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
	}
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
