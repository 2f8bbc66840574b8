package synth_test

import (
	"testing"

	"github.com/lemctl/lemctl/plugins/onnx/internal/testenv"
	"github.com/lemctl/lemctl/plugins/onnx/synth"
)

func TestORTGreedyAndPadding(t *testing.T) {
	v := testenv.Vocab(t)
	testenv.ORT(t)
	prompts := [][]int64{
		{15496, 11, 616, 1438, 318}, // "Hello, my name is"
		{464, 2068, 7586, 21831},    // "The quick brown fox"
		{40},
	}
	for _, name := range []string{"gpt2-tiny", "llama-tiny", "gpt2-tiny-q8", "gpt2-tiny-q4", "llama-tiny-q4"} {
		t.Run(name, func(t *testing.T) {
			p, _ := synth.Lookup(name)
			dir, _, err := synth.Ensure(t.TempDir(), p, 0, v)
			if err != nil {
				t.Fatal(err)
			}
			d := testenv.NewDecoder(t, dir)
			var alone [][]float32
			for i, pr := range prompts {
				ids, _ := testenv.Greedy(t, d, pr, 12)
				distinct := map[int64]bool{}
				for _, id := range ids {
					distinct[id] = true
				}
				t.Logf("prompt %d greedy ids %v", i, ids)
				if len(distinct) < 3 {
					t.Errorf("prompt %d: greedy decoding is degenerate: %v (want ≥ 3 distinct tokens)", i, ids)
				}
				st := d.Empty(1)
				lg := d.Step(t, st, [][]int64{pr}, [][]int64{testenv.Ones(len(pr))})
				alone = append(alone, lg[0][len(pr)-1])
			}
			// A left-padded batch gives each prompt's logits exactly as alone.
			width := 0
			for _, pr := range prompts {
				width = max(width, len(pr))
			}
			var ids, mask [][]int64
			for _, pr := range prompts {
				row := make([]int64, width)
				m := make([]int64, width)
				for j := range pr {
					row[width-len(pr)+j] = pr[j]
					m[width-len(pr)+j] = 1
				}
				ids, mask = append(ids, row), append(mask, m)
			}
			st := d.Empty(len(prompts))
			lg := d.Step(t, st, ids, mask)
			for i := range prompts {
				if diff := testenv.MaxDiff(lg[i][width-1], alone[i]); diff > 1e-4 {
					t.Errorf("prompt %d: left-padded batch logits differ from the prompt alone by %g", i, diff)
				}
			}
			// And the next decode step with the cache stays exact.
			var next [][]int64
			for i := range prompts {
				next = append(next, []int64{testenv.Argmax(lg[i][width-1])})
			}
			lg2 := d.Step(t, st, next, [][]int64{{1}, {1}, {1}})
			for i, pr := range prompts {
				s1 := d.Empty(1)
				d.Step(t, s1, [][]int64{pr}, [][]int64{testenv.Ones(len(pr))})
				want := d.Step(t, s1, [][]int64{next[i]}, [][]int64{{1}})[0][0]
				if diff := testenv.MaxDiff(lg2[i][0], want); diff > 1e-4 {
					t.Errorf("prompt %d: decode step in a padded batch differs from alone by %g", i, diff)
				}
			}
		})
	}
}
