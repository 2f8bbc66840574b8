package engine_test

import (
	"context"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/plugins/onnx/engine"
	"github.com/lemctl/lemctl/sdk"
)

// BenchmarkServeVsGenerate compares continuous batching with a static batch on the same loaded
// model, in-process: the benchmark's 8 requests (16-token prompts, 32 new tokens, greedy, EOS
// ignored) sent at once into Serve, and the same 8 as one Generate batch, in turn inside every
// iteration (rotating which goes first). Decode tokens/s is, for both, the tokens after each
// request's first over [first token, last token]; ratio is the median per-iteration
// Serve ÷ Generate. $LEM_BENCH_MODEL picks the model (default synthetic:gpt2-124m).
//
//	go test -run '^$' -bench ServeVsGenerate -benchtime 5x ./engine/
func BenchmarkServeVsGenerate(b *testing.B) {
	ref := benchModels()[0]
	b.Run("model="+strings.TrimPrefix(ref, "synthetic:")+"/requests=8", func(b *testing.B) {
		env := inprocBench(b, ref)
		req, _ := benchRequest(8)
		serveDecode(b, env.inproc, req) // warm both
		env.viaPlugin(b, env.inproc, req)
		var serve, gen float64
		var ratios []float64
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			var d [2]float64
			for k := 0; k < 2; k++ {
				if (i+k)%2 == 0 {
					d[0] = serveDecode(b, env.inproc, req)
				} else {
					d[1], _ = env.viaPlugin(b, env.inproc, req)
				}
			}
			serve, gen = serve+d[0], gen+d[1]
			ratios = append(ratios, d[0]/d[1])
		}
		b.Logf("per-iteration Serve ÷ Generate: %.3f", ratios)
		n := float64(b.N)
		b.ReportMetric(serve/n, "serve-tok/s")
		b.ReportMetric(gen/n, "generate-tok/s")
		b.ReportMetric(median(ratios), "ratio")
	})
}

// serveDecode sends req's prompts at once into Serve and returns its decode tokens/s.
func serveDecode(b *testing.B, e *engine.Engine, req sdk.GenerateRequest) float64 {
	in := make(chan sdk.ServeRequest, len(req.Prompts))
	for _, p := range req.Prompts {
		in <- sdk.ServeRequest{Prompt: p, Decoding: req.Decoding}
	}
	close(in)
	var first, last int64
	tokens := 0
	err := e.Serve(context.Background(), sdk.ServeOptions{}, in, func(ev sdk.ServeEvent) error {
		r := ev.Done
		if r == nil || r.FinishReason != "length" || len(r.OutputIDs) != benchNew {
			b.Fatalf("serve: %+v", ev)
		}
		if first == 0 || r.TokenMonoNS[0] < first {
			first = r.TokenMonoNS[0]
		}
		last = max(last, r.TokenMonoNS[len(r.TokenMonoNS)-1])
		tokens += len(r.OutputIDs) - 1
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return float64(tokens) / seconds(last-first)
}
