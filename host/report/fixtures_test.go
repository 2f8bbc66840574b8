package report

import (
	"context"
	"fmt"
	"testing"

	"github.com/lemctl/lemctl/host/aggregate"
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/results/resultstest"
	"github.com/lemctl/lemctl/host/study"
)

const (
	sec        = int64(1e9)
	wallOffset = int64(1_796_000_000) * sec
)

// experimentOf stores the workers' raw results in a memory repository, aggregates them and
// returns what an experiment page is made from.
func experimentOf(t testing.TB, exp string, workers []resultstest.Worker) Experiment {
	t.Helper()
	repo := resultstest.NewMemory()
	ctx := context.Background()
	for _, w := range workers {
		data, err := results.EncodeRaw(w.Raw())
		if err != nil {
			t.Fatal(err)
		}
		st, err := repo.SaveRaw(ctx, exp, w.Rank, data)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := repo.MarkComplete(ctx, exp, w.Rank, st.SHA256); err != nil {
			t.Fatal(err)
		}
	}
	out, err := aggregate.Run(ctx, repo, exp, aggregate.Options{Force: true, LemctlVersion: "test"})
	if err != nil {
		t.Fatal(err)
	}
	e := Experiment{Aggregated: out.Aggregated, AggregatedJSON: out.Data}
	for _, w := range workers {
		data, err := repo.LoadRaw(ctx, exp, w.Rank)
		if err != nil {
			t.Fatal(err)
		}
		r, err := results.DecodeRaw(data)
		if err != nil {
			t.Fatal(err)
		}
		e.Raws = append(e.Raws, r)
	}
	return e
}

// twoGPUs is two GPU workers on one host sharing its CPU package, three repeats; gpuW sets the
// GPUs' power (a second experiment with other power makes a comparison).
func twoGPUs(exp string, gpuW float64, itlNS int64) []resultstest.Worker {
	host := results.Host{Hostname: "node-a", BootID: "boot-a"}
	var ws []resultstest.Worker
	for g := range 2 {
		uuid := fmt.Sprintf("GPU-%d", g)
		ws = append(ws, resultstest.Worker{Exp: exp, Rank: g, WorldSize: 2, Host: host,
			Device:      results.Device{Kind: "cuda", Index: g, UUID: uuid, Name: "Fake GPU", Slot: fmt.Sprintf("cuda:%d", g)},
			StartMonoNS: 100 * sec, EndMonoNS: 112 * sec, WallOffsetNS: wallOffset, Repeats: 3, RequestsPerRepeat: 4,
			InputTokens: 32, OutputTokens: 50, TTFTNS: 30e6 + int64(g)*5e6, ITLNS: itlNS, FLOPsPerToken: 1e9,
			PeakBytes: results.Int64(2 << 30), MeterCPUS: results.Float(0.05),
			Domains: []resultstest.DomainSpec{
				{ID: uuid, Kind: "gpu", Scope: "device", PowerW: gpuW + float64(g)*10, IdleW: results.Float(gpuW / 4)},
				{ID: "intel-rapl:0", Kind: "package", Scope: "socket", PowerW: 60, IdleW: results.Float(15)},
			},
			Findings: []results.Finding{{Code: "low_counter_updates", Severity: results.SeverityWarning, Message: "the counter updated rarely", Advice: "lengthen the window"}},
		})
	}
	return ws
}

// thousandRanks is the aggregation benchmark's fixture: 125 hosts × 8 GPU workers, 10 requests
// of 100 tokens each, three domains sampled every 100 ms over a 20 s window.
func thousandRanks() []resultstest.Worker {
	var ws []resultstest.Worker
	const hosts, perHost = 125, 8
	for h := range hosts {
		host := results.Host{Hostname: fmt.Sprintf("node-%03d", h), BootID: fmt.Sprintf("boot-%03d", h)}
		for g := range perHost {
			rank := h*perHost + g
			uuid := fmt.Sprintf("GPU-%04d", rank)
			ws = append(ws, resultstest.Worker{Exp: "bench", Rank: rank, WorldSize: hosts * perHost, Host: host,
				Device:      results.Device{Kind: "cuda", Index: g, UUID: uuid, Name: "Fake GPU", Slot: fmt.Sprintf("cuda:%d", g)},
				StartMonoNS: 100*sec + int64(g)*1e7, EndMonoNS: 120*sec + int64(g)*1e7,
				WallOffsetNS: wallOffset, Repeats: 1, RequestsPerRepeat: 10, InputTokens: 64, OutputTokens: 100,
				TTFTNS: 30e6, ITLNS: 15e6, FLOPsPerToken: 2e9, PeakBytes: results.Int64(4 << 30),
				Domains: []resultstest.DomainSpec{
					{ID: uuid, Kind: "gpu", Scope: "device", PowerW: 300, IdleW: results.Float(75)},
					{ID: "intel-rapl:0", Kind: "package", Scope: "socket", PowerW: 120, IdleW: results.Float(40)},
					{ID: "intel-rapl:0:2", Kind: "dram", Scope: "socket", PowerW: 20, IdleW: results.Float(8)},
				}})
		}
	}
	return ws
}

// smallStudy is a 3 × 2 grid (batch size × engine provider), 3 cycles each; figures follow
// from the settings so that the frontier is known: p04 and p05 (batch size 4) are fastest and
// p04 (cpu) the most frugal of them, p05 (cuda) the fastest.
func smallStudy() *study.Aggregate {
	s := &study.Aggregate{SchemaVersion: study.SchemaVersion, Kind: study.Kind, StudyID: "st-small", Name: "batching",
		Base: "examples/quickstart.toml", StudyFile: "study.toml", Cycles: 3, Order: "interleaved", Seed: 7, GapS: 1,
		Axes:  []study.Axis{{Key: "workload.batch_size", Values: []any{1.0, 2.0, 4.0}}, {Key: "engine.provider", Values: []any{"cpu", "cuda"}}},
		State: results.StateCompleted, StartUnixNS: wallOffset, LemctlVersion: "test"}
	end := wallOffset + 600*sec
	s.EndUnixNS = &end
	n := 0
	for _, b := range []float64{1, 2, 4} {
		for pi, prov := range []string{"cpu", "cuda"} {
			id := fmt.Sprintf("p%02d", n)
			pt := study.PointAggregate{ID: id, Settings: map[string]any{"workload.batch_size": b, "engine.provider": prov},
				ConfigHash: "hash-" + id, Valid: true, Figures: map[string]*results.Stats{}}
			for c := range 3 {
				pt.Experiments = append(pt.Experiments, fmt.Sprintf("e-%s-%d", id, c))
			}
			jpt := []float64{}
			tps := []float64{}
			ttft := []float64{}
			for c := range 3 {
				jpt = append(jpt, 2/b+0.3*float64(pi)+0.01*float64(c))
				tps = append(tps, 100*b+5*float64(pi)+float64(c))
				ttft = append(ttft, 20*b+float64(c))
			}
			pt.Figures[study.FigureJPerOutputToken] = results.NewStats(jpt)
			pt.Figures[study.FigureOutputTokensPerS] = results.NewStats(tps)
			pt.Figures[study.FigureTTFTP50MS] = results.NewStats(ttft)
			if id == "p03" {
				pt.Valid = false
				pt.Findings = []results.Finding{{Code: "thermal_throttle", Severity: results.SeverityError, Message: "the GPU throttled in cycle 2"}}
			}
			s.Points = append(s.Points, pt)
			n++
		}
	}
	return s
}
