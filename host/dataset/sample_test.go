package dataset_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/dataset"
)

func numbered(n int) *dataset.Dataset {
	d := &dataset.Dataset{Name: "t", Skipped: 2}
	for i := 0; i < n; i++ {
		d.Prompts = append(d.Prompts, dataset.Prompt{ID: fmt.Sprint(i), Text: fmt.Sprint("p", i)})
	}
	return d
}

func ids(ps []dataset.Prompt) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}

func TestSelect(t *testing.T) {
	d := numbered(20)
	seq, err := d.Select(5, "sequential", 99)
	if err != nil || strings.Join(ids(seq), ",") != "0,1,2,3,4" {
		t.Errorf("sequential: %v %v", ids(seq), err)
	}
	all, err := d.Select(0, "sequential", 0)
	if err != nil || len(all) != 20 {
		t.Errorf("0 means all: %d %v", len(all), err)
	}
	a, _ := d.Select(8, "shuffle", 7)
	b, _ := d.Select(8, "shuffle", 7)
	c, _ := d.Select(8, "shuffle", 8)
	if !reflect.DeepEqual(ids(a), ids(b)) {
		t.Errorf("same seed, different samples: %v %v", ids(a), ids(b))
	}
	if reflect.DeepEqual(ids(a), ids(c)) {
		t.Errorf("different seeds, same sample: %v", ids(a))
	}
	if reflect.DeepEqual(ids(a), ids(seq)[:5]) {
		t.Errorf("shuffle did not shuffle")
	}
	_, err = d.Select(21, "shuffle", 1)
	if !errors.Is(err, dataset.ErrTooFew) || !strings.Contains(err.Error(), "dataset t has 20 prompts (2 records without a prompt skipped), fewer than the 21 asked for") {
		t.Errorf("too few: %v", err)
	}
	if _, err := d.Select(3, "random", 1); err == nil {
		t.Error("unknown order accepted")
	}
}

// The permutation is part of the reproducibility contract: this golden value must never change.
func TestPermutationGolden(t *testing.T) {
	got := dataset.Permutation(10, 42)
	want := []int{0, 9, 5, 8, 6, 4, 7, 2, 1, 3}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Permutation(10, 42) = %v, want %v", got, want)
	}
	seen := map[int]bool{}
	for _, i := range dataset.Permutation(1000, 3) {
		seen[i] = true
	}
	if len(seen) != 1000 {
		t.Errorf("not a permutation: %d distinct", len(seen))
	}
}

func TestPartition(t *testing.T) {
	for _, n := range []int{0, 1, 7, 48, 218} {
		for workers := 1; workers <= 8; workers++ {
			shards, err := dataset.Partition(n, workers)
			if err != nil {
				t.Fatal(err)
			}
			if len(shards) != workers {
				t.Fatalf("n=%d w=%d: %d shards", n, workers, len(shards))
			}
			count := make([]int, n)
			lo, hi := n, 0
			for _, s := range shards {
				lo, hi = min(lo, len(s)), max(hi, len(s))
				for _, i := range s {
					count[i]++
				}
			}
			for i, c := range count {
				if c != 1 {
					t.Errorf("n=%d w=%d: prompt %d measured %d times", n, workers, i, c)
				}
			}
			if hi-lo > 1 {
				t.Errorf("n=%d w=%d: shard sizes %d…%d, not balanced", n, workers, lo, hi)
			}
			again, _ := dataset.Partition(n, workers)
			if !reflect.DeepEqual(shards, again) {
				t.Errorf("n=%d w=%d: not deterministic", n, workers)
			}
		}
	}
	if _, err := dataset.Partition(5, 0); err == nil {
		t.Error("0 workers accepted")
	}
}

func TestShard(t *testing.T) {
	ps, _ := numbered(7).Select(0, "sequential", 0)
	var union []string
	for r := 0; r < 3; r++ {
		s, err := dataset.Shard(ps, r, 3)
		if err != nil {
			t.Fatal(err)
		}
		union = append(union, ids(s)...)
	}
	if len(union) != 7 {
		t.Errorf("shards cover %v", union)
	}
	if _, err := dataset.Shard(ps, 3, 3); err == nil {
		t.Error("rank 3 of 3 accepted")
	}
}

func BenchmarkSelectShuffle(b *testing.B) {
	d := numbered(100_000)
	for b.Loop() {
		if _, err := d.Select(10_000, "shuffle", 1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenBuiltin(b *testing.B) {
	for b.Loop() {
		if _, err := dataset.Open(context.Background(), "builtin", dataset.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
