package aggregate

import (
	"context"
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/results/resultstest"
)

// benchRepo holds 1,000 raw results: 125 hosts × 8 GPU workers, each with 10 requests of 100
// tokens (1,010 latency samples per worker: 10 TTFT + 990 ITL + 10 E2E; 1,010,000 in total) and
// three energy domains sampled every 100 ms over a 20 s window (its GPU, and the host's package
// and DRAM, which the 8 workers of a host share and aggregation must stitch).
func benchRepo(b *testing.B) (*resultstest.Memory, int) {
	repo := resultstest.NewMemory()
	ctx := context.Background()
	const hosts, perHost = 125, 8
	samples := 0
	for h := range hosts {
		host := results.Host{Hostname: fmt.Sprintf("node-%03d", h), BootID: fmt.Sprintf("boot-%03d", h)}
		for g := range perHost {
			rank := h*perHost + g
			uuid := fmt.Sprintf("GPU-%04d", rank)
			w := resultstest.Worker{Exp: "bench", Rank: rank, WorldSize: hosts * perHost, Host: host,
				Device: gpuDev(g, uuid), StartMonoNS: 100*sec + int64(g)*1e7, EndMonoNS: 120*sec + int64(g)*1e7,
				WallOffsetNS: wallOffset, Repeats: 1, RequestsPerRepeat: 10, InputTokens: 64, OutputTokens: 100,
				TTFTNS: 30e6, ITLNS: 15e6, FLOPsPerToken: 2e9, PeakBytes: results.Int64(4 << 30),
				Domains: []resultstest.DomainSpec{
					gpuDomain(uuid, 300),
					{ID: "intel-rapl:0", Kind: "package", Scope: "socket", PowerW: 120, IdleW: results.Float(40)},
					{ID: "intel-rapl:0:2", Kind: "dram", Scope: "socket", PowerW: 20, IdleW: results.Float(8)},
				}}
			raw := w.Raw()
			for _, r := range raw.Requests {
				samples += 2 + len(r.TokenMonoNS) - 1
			}
			data, err := results.EncodeRaw(raw)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := repo.SaveRaw(ctx, "bench", rank, data); err != nil {
				b.Fatal(err)
			}
			if _, err := repo.MarkComplete(ctx, "bench", rank, sha(data)); err != nil {
				b.Fatal(err)
			}
		}
	}
	return repo, samples
}

// BenchmarkAggregate1000 aggregates 1,000 raw results with ~1,000,000 latency samples through the
// repository interface (list, load, decode, check, stitch, percentiles, encode, store). Goal:
// ≤ 2 s and ≤ 300 MB. peak-heap-MB samples the live heap every millisecond during the runs;
// maxrss-MB is the process's peak resident set, fixture repository included; cpu-s/op is the
// CPU time (user + system, all threads) per aggregation.
func BenchmarkAggregate1000(b *testing.B) {
	repo, samples := benchRepo(b)
	runtime.GC()
	ctx := context.Background()
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		base := uint64(0)
		for i := 0; ; i++ {
			metrics.Read(s)
			v := s[0].Value.Uint64()
			if i == 0 {
				base = v
			}
			if v > base && v-base > peak {
				peak = v - base
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
	cpu := func() float64 {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	cpu0 := cpu()
	b.ResetTimer()
	for b.Loop() {
		out, err := Run(ctx, repo, "bench", Options{Force: true})
		if err != nil {
			b.Fatal(err)
		}
		if out.Aggregated.LatencyMS.ITL.Count+out.Aggregated.LatencyMS.TTFT.Count+out.Aggregated.LatencyMS.E2E.Count != samples {
			b.Fatalf("aggregated %d latency samples, want %d", out.Aggregated.LatencyMS.ITL.Count, samples)
		}
	}
	b.StopTimer()
	cpuUsed := cpu() - cpu0
	close(stop)
	wg.Wait()
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	b.ReportMetric(float64(samples), "latency-samples")
	// CPU seconds per aggregation (all threads): a figure that other load on the machine does not
	// inflate the way it inflates ns/op.
	b.ReportMetric(cpuUsed/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(peak)/1e6, "peak-heap-MB")
	b.ReportMetric(float64(ru.Maxrss)/1e3, "maxrss-MB")
}
