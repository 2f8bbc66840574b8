package dataset

import (
	"fmt"

	"github.com/lemctl/lemctl/host/echo"
)

// Orders of the prompt sample.
const (
	OrderSequential = "sequential"
	OrderShuffle    = "shuffle"
)

// ErrTooFew is wrapped by Select when the dataset has fewer prompts than asked.
var ErrTooFew = fmt.Errorf("too few prompts")

// Select returns n prompts (0: all of them). sequential: the first n in dataset order; shuffle:
// a seeded random sample of n in random order. The same dataset, n, order and seed always give
// the same prompts: the generator (splitmix64) and the shuffle are implemented here, not taken
// from math/rand, so they cannot change with the Go version.
func (d *Dataset) Select(n int, order string, seed uint64) ([]Prompt, error) {
	if n < 0 {
		return nil, fmt.Errorf("dataset %s: negative prompt count %d", d.Name, n)
	}
	if n == 0 {
		n = len(d.Prompts)
	}
	if n > len(d.Prompts) {
		skipped := ""
		if d.Skipped > 0 {
			skipped = fmt.Sprintf(" (%d records without a prompt skipped)", d.Skipped)
		}
		return nil, fmt.Errorf("dataset %s has %d prompts%s, fewer than the %d asked for (workload.prompts / -n): %w",
			d.Name, len(d.Prompts), skipped, n, ErrTooFew)
	}
	switch order {
	case OrderSequential, "":
		return append([]Prompt(nil), d.Prompts[:n]...), nil
	case OrderShuffle:
		idx := Permutation(len(d.Prompts), seed)
		out := make([]Prompt, n)
		for i := range out {
			out[i] = d.Prompts[idx[i]]
		}
		return out, nil
	}
	return nil, fmt.Errorf("order %s: valid orders are %q and %q", echo.Quote(order), OrderSequential, OrderShuffle)
}

// Permutation returns a seeded permutation of 0..n-1 (Fisher–Yates over splitmix64).
func Permutation(n int, seed uint64) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	r := splitmix{state: seed}
	for i := n - 1; i > 0; i-- {
		j := int(r.below(uint64(i + 1)))
		idx[i], idx[j] = idx[j], idx[i]
	}
	return idx
}

// splitmix is the splitmix64 generator (Steele, Lea, Flood 2014): tiny, fast and fixed forever.
type splitmix struct{ state uint64 }

func (s *splitmix) next() uint64 {
	s.state += 0x9e3779b97f4a7c15
	z := s.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// below returns a uniform value in [0, n) by rejection, n > 0.
func (s *splitmix) below(n uint64) uint64 {
	limit := -n % n // (2^64 - n) mod n: values below it would bias the result
	for {
		v := s.next()
		if v >= limit {
			return v % n
		}
	}
}

// Partition splits n prompts (indices 0..n-1) across workers: worker r gets r, r+workers,
// r+2·workers, … Every index goes to exactly one worker, the shard sizes differ by at most one,
// and the split depends only on n and workers.
func Partition(n, workers int) ([][]int, error) {
	if workers < 1 {
		return nil, fmt.Errorf("partition: %d workers; need at least 1", workers)
	}
	if n < 0 {
		return nil, fmt.Errorf("partition: negative prompt count %d", n)
	}
	shards := make([][]int, workers)
	for r := range shards {
		shards[r] = make([]int, 0, n/workers+1)
	}
	for i := 0; i < n; i++ {
		shards[i%workers] = append(shards[i%workers], i)
	}
	return shards, nil
}

// Shard returns the prompts of worker rank among world workers (see Partition).
func Shard(prompts []Prompt, rank, world int) ([]Prompt, error) {
	if rank < 0 || rank >= world {
		return nil, fmt.Errorf("shard: rank %d outside 0..%d", rank, world-1)
	}
	shards, err := Partition(len(prompts), world)
	if err != nil {
		return nil, err
	}
	out := make([]Prompt, len(shards[rank]))
	for i, idx := range shards[rank] {
		out[i] = prompts[idx]
	}
	return out, nil
}
