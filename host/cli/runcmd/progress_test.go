package runcmd

import (
	"bytes"
	"testing"

	"github.com/lemctl/lemctl/host/launch"
)

// TestProgressShowsWarmup: a warm-up progress event prints the batch against max_batches, the CV
// against its target and the time against max_s; a dash until the CV window is full.
func TestProgressShowsWarmup(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out, "text")
	cv := 0.1234
	p.update(launch.Message{Rank: 0, Phase: "warmup", Warmup: &launch.WarmupProgress{Batch: 1, MaxBatches: 20, TargetCV: 0.05, ElapsedS: 2.4, MaxS: 60}})
	p.update(launch.Message{Rank: 0, Phase: "warmup", Warmup: &launch.WarmupProgress{Batch: 4, MaxBatches: 20, CV: &cv, TargetCV: 0.05, ElapsedS: 9.2}})
	want := "[rank 0] warmup         warm-up batch 1/20, CV – (target 0.05), 2/60 s\n" +
		"[rank 0] warmup         warm-up batch 4/20, CV 0.12 (target 0.05), 9 s\n"
	if out.String() != want {
		t.Errorf("progress:\n%s\nwant:\n%s", out.String(), want)
	}
}
