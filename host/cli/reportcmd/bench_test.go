package reportcmd

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/lemctl/lemctl/host/aggregate"
	"github.com/lemctl/lemctl/host/report"
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/results/resultstest"
)

// BenchmarkThousandRanksCommand is what `lemctl report` does for the aggregation benchmark's
// 1,000-rank experiment (125 hosts × 8 GPUs, three domains sampled every 100 ms over 20 s), the
// repository's own latency aside: load and decode the aggregate and the 1,000 raw results, then
// render the page. Goal ≤ 5 s and ≤ 5 MB (docs/performance.md). cpu-s/op is the CPU time per
// report, the figure other load on the machine does not inflate.
func BenchmarkThousandRanksCommand(b *testing.B) {
	repo := resultstest.NewMemory()
	ctx := context.Background()
	const hosts, perHost, sec = 125, 8, int64(1e9)
	for h := range hosts {
		host := results.Host{Hostname: fmt.Sprintf("node-%03d", h), BootID: fmt.Sprintf("boot-%03d", h)}
		for g := range perHost {
			rank := h*perHost + g
			uuid := fmt.Sprintf("GPU-%04d", rank)
			w := resultstest.Worker{Exp: "bench", Rank: rank, WorldSize: hosts * perHost, Host: host,
				Device:      results.Device{Kind: "cuda", Index: g, UUID: uuid, Name: "Fake GPU", Slot: fmt.Sprintf("cuda:%d", g)},
				StartMonoNS: 100*sec + int64(g)*1e7, EndMonoNS: 120*sec + int64(g)*1e7, WallOffsetNS: 1_796_000_000 * sec,
				Repeats: 1, RequestsPerRepeat: 10, InputTokens: 64, OutputTokens: 100, TTFTNS: 30e6, ITLNS: 15e6,
				FLOPsPerToken: 2e9, PeakBytes: results.Int64(4 << 30),
				Domains: []resultstest.DomainSpec{
					{ID: uuid, Kind: "gpu", Scope: "device", PowerW: 300, IdleW: results.Float(75)},
					{ID: "intel-rapl:0", Kind: "package", Scope: "socket", PowerW: 120, IdleW: results.Float(40)},
					{ID: "intel-rapl:0:2", Kind: "dram", Scope: "socket", PowerW: 20, IdleW: results.Float(8)},
				}}
			data, err := results.EncodeRaw(w.Raw())
			if err != nil {
				b.Fatal(err)
			}
			st, err := repo.SaveRaw(ctx, "bench", rank, data)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := repo.MarkComplete(ctx, "bench", rank, st.SHA256); err != nil {
				b.Fatal(err)
			}
		}
	}
	if _, err := aggregate.Run(ctx, repo, "bench", aggregate.Options{}); err != nil {
		b.Fatal(err)
	}
	cpu := func() float64 {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	size := 0
	cpu0 := cpu()
	b.ResetTimer()
	for b.Loop() {
		page, err := ExperimentPage(ctx, repo, "bench", report.Options{})
		if err != nil {
			b.Fatal(err)
		}
		size = len(page)
	}
	b.StopTimer()
	b.ReportMetric((cpu()-cpu0)/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(size)/1e6, "page-MB")
}
