package resultstest

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/lemctl/lemctl/host/results"
)

// DomainSpec is an energy domain a fake worker sees, drawing a constant power.
type DomainSpec struct {
	ID, Kind, Scope string
	PowerW          float64
	IdleW           *float64 // nil: no idle baseline
	Unavailable     string   // non-empty: the domain is unavailable with this reason
	NoTimeline      bool     // report only the total
	Health          []results.Finding
	// UncertaintyJ is the domain's standard uncertainty over the window (nil: none reported); each
	// repeat gets its counted domains' in quadrature.
	UncertaintyJ *float64
}

// Worker builds a deterministic raw result: its window, requests, token times, energy timelines
// and repeats all follow from the fields, so tests know every figure in advance.
type Worker struct {
	Exp        string
	Rank       int
	WorldSize  int
	Host       results.Host
	Device     results.Device
	ConfigHash string
	ModelRef   string
	EngineVer  string

	// StartMonoNS and EndMonoNS bound the measured window; WallOffsetNS maps mono to unix time.
	StartMonoNS, EndMonoNS int64
	WallOffsetNS           int64
	// Repeats splits the window into equal back-to-back repeats (0 means 1).
	Repeats int
	// RequestsPerRepeat requests start at each repeat's start; request i produces
	// OutputTokens tokens, the first after TTFTNS·(1+i), then one every ITLNS.
	RequestsPerRepeat int
	InputTokens       int
	OutputTokens      int
	TTFTNS, ITLNS     int64

	Domains       []DomainSpec
	SampleEveryNS int64 // timeline period; 0 means 100 ms
	PeakBytes     *int64
	FLOPsPerToken float64
	MeterCPUS     *float64
	Findings      []results.Finding
}

// Raw builds the raw result.
func (w Worker) Raw() *results.Raw {
	repeats := max(w.Repeats, 1)
	every := w.SampleEveryNS
	if every == 0 {
		every = 100e6
	}
	span := func(a, b int64) results.Span {
		return results.Span{StartMonoNS: a, EndMonoNS: b, StartUnixNS: a + w.WallOffsetNS, EndUnixNS: b + w.WallOffsetNS,
			DurationS: float64(b-a) / 1e9}
	}
	hash := w.ConfigHash
	if hash == "" {
		hash = "c0ffee"
	}
	model := w.ModelRef
	if model == "" {
		model = "synthetic:tiny"
	}
	engVer := w.EngineVer
	if engVer == "" {
		engVer = "0.1.0"
	}
	batch := w.RequestsPerRepeat
	r := &results.Raw{
		SchemaVersion: results.SchemaVersion,
		Kind:          results.KindRaw,
		ExperimentID:  w.Exp,
		ConfigHash:    hash,
		Config:        json.RawMessage(`{"workload":{"batch_size":` + fmt.Sprint(batch) + `}}`),
		Provenance:    results.Provenance{LemctlVersion: "0.1.0-test", LemctlCommit: "abc1234"},
		Model:         results.Model{Ref: model, SHA256: "feed", Architecture: "gpt2", Parameters: results.Int64(1000), Synthetic: true},
		Engine:        results.Engine{Plugin: "onnx", Version: engVer, ExecutionProvider: "cpu"},
		Dataset:       results.Dataset{Name: "builtin", SHA256: "da7a", Prompts: batch},
		Rank:          w.Rank,
		WorldSize:     w.WorldSize,
		Host:          w.Host,
		Device:        w.Device,
		Plugins:       []results.Plugin{{Name: "onnx", Version: engVer, Kinds: []string{"loader", "engine"}, SHA256: "0n"}},
		Window: results.RawWindow{Span: span(w.StartMonoNS, w.EndMonoNS), Phases: map[string]results.Span{
			"measured": span(w.StartMonoNS, w.EndMonoNS),
		}},
		Workload:    results.Workload{BatchSize: &batch, Repeats: repeats},
		Memory:      results.Memory{PeakBytes: w.PeakBytes},
		Overhead:    results.Overhead{MeterCPUS: w.MeterCPUS},
		Environment: results.Environment{Facts: map[string]string{"cpu_model": "Fake CPU", "rank": fmt.Sprint(w.Rank)}},
	}
	length := (w.EndMonoNS - w.StartMonoNS) / int64(repeats)
	for k := range repeats {
		a := w.StartMonoNS + int64(k)*length
		b := a + length
		if k == repeats-1 {
			b = w.EndMonoNS
		}
		rep := results.Repeat{Index: k, Window: span(a, b)}
		for i := range w.RequestsPerRepeat {
			req := results.Request{ID: fmt.Sprintf("r%d-p%d-%d", w.Rank, k, i), Repeat: k, InputTokens: w.InputTokens,
				OutputTokens: w.OutputTokens, StartMonoNS: a, FinishReason: "length"}
			for j := range w.OutputTokens {
				req.TokenMonoNS = append(req.TokenMonoNS, a+w.TTFTNS*int64(1+i)+w.ITLNS*int64(j))
			}
			r.Requests = append(r.Requests, req)
			rep.Requests++
			rep.InputTokens += int64(w.InputTokens)
			rep.OutputTokens += int64(w.OutputTokens)
		}
		rep.OutputTokensPerS = results.Ratio(float64(rep.OutputTokens), rep.Window.DurationS)
		r.Repeats = append(r.Repeats, rep)
		r.Workload.Requests += rep.Requests
		r.Workload.InputTokens += rep.InputTokens
		r.Workload.OutputTokens += rep.OutputTokens
	}
	r.LatencyMS = results.LatencyOf(r.Requests)
	d := r.Window.DurationS
	r.Throughput = results.Throughput{Rates: results.RatesOf(r.Workload, d)}
	if w.FLOPsPerToken > 0 {
		r.FLOPs = results.FLOPs{Total: results.Float(w.FLOPsPerToken * float64(r.Workload.OutputTokens)),
			PerOutputToken: results.Float(w.FLOPsPerToken), Method: "analytic"}
	}
	var total, u2 float64
	counted := false
	for _, ds := range w.Domains {
		dom := results.Domain{ID: ds.ID, Kind: ds.Kind, Scope: ds.Scope, Method: "counter", Confidence: "simulated",
			Available: ds.Unavailable == "", Reason: ds.Unavailable, ResolutionJ: results.Float(1e-6), Health: []results.Finding{}}
		for _, h := range ds.Health {
			h.Domain = ds.ID
			dom.Health = append(dom.Health, h)
		}
		if dom.Available {
			j := ds.PowerW * d
			dom.TotalJ = results.Float(j)
			dom.UncertaintyJ = ds.UncertaintyJ
			if ds.IdleW != nil {
				dom.IdlePowerW = results.Float(*ds.IdleW)
				dom.StaticJ = results.Float(*ds.IdleW * d)
				dom.DynamicJ = results.Float(math.Max(0, j-*ds.IdleW*d))
			}
			if !ds.NoTimeline {
				// Cumulative µJ since the first sample, which is taken at the window start.
				for t := w.StartMonoNS; ; t += every {
					if t > w.EndMonoNS {
						t = w.EndMonoNS
					}
					uj := uint64(math.Round(ds.PowerW * float64(t-w.StartMonoNS) / 1e3))
					dom.Timeline = append(dom.Timeline, results.Sample{MonoNS: t, EnergyUJ: uj, PowerW: results.Float(ds.PowerW)})
					if t == w.EndMonoNS {
						break
					}
				}
				updates := len(dom.Timeline) - 1
				dom.CounterUpdates = &updates
			}
			switch ds.Kind {
			case "gpu", "package", "dram":
				total += j
				counted = true
				if ds.UncertaintyJ != nil {
					u2 += *ds.UncertaintyJ * *ds.UncertaintyJ
				}
			}
		}
		r.Energy.Domains = append(r.Energy.Domains, dom)
	}
	r.Validity = results.ValidityOf(w.Findings, r.Energy.Domains)
	if counted {
		r.Energy.TotalJ = results.Float(total)
		r.Energy.JPerOutputToken = results.Ratio(total, float64(r.Workload.OutputTokens))
		r.Energy.TokensPerJ = results.Ratio(float64(r.Workload.OutputTokens), total)
		r.Energy.JPerRequest = results.Ratio(total, float64(r.Workload.Requests))
		if u2 > 0 {
			r.Energy.UncertaintyJ = results.Float(math.Sqrt(u2))
			for i := range r.Repeats {
				r.Repeats[i].EnergyUncertaintyJ = results.Float(math.Sqrt(u2))
			}
		}
	}
	return r
}

// Bytes encodes the raw result as a worker would store it.
func (w Worker) Bytes() []byte {
	b, err := results.Encode(w.Raw())
	if err != nil {
		panic(err)
	}
	return b
}
