package plugintest_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/clock"
	"github.com/lemctl/lemctl/sdk/sampler"
)

// The well-behaved in-memory implementations every fixture starts from.

type memLoader struct{}

func (memLoader) Resolve(_ context.Context, ref string) (*sdk.Artifact, error) {
	if !strings.HasPrefix(ref, "mem:") {
		return nil, fmt.Errorf("reference %q: want mem:<name>: %w", ref, sdk.ErrInvalidArgument)
	}
	return &sdk.Artifact{Reference: ref, Path: "/dev/null", SHA256: strings.Repeat("ab", 32), Format: "mem", Parameters: 1000,
		FLOPs: sdk.FLOPsCoefficients{PerToken: 2000, PerTokenPosition: 8}, ContextLength: 64, VocabSize: 256, EOSTokenIDs: []int32{0}}, nil
}

func (memLoader) Tokenize(_ context.Context, _ string, texts []string) ([][]int32, error) {
	out := make([][]int32, len(texts))
	for i, t := range texts {
		for _, b := range []byte(t) {
			out[i] = append(out[i], int32(b))
		}
	}
	return out, nil
}

func (memLoader) Detokenize(_ context.Context, _ string, ids [][]int32) ([]string, error) {
	out := make([]string, len(ids))
	for i, s := range ids {
		b := make([]byte, len(s))
		for j, id := range s {
			b[j] = byte(id)
		}
		out[i] = string(b)
	}
	return out, nil
}

type memEngine struct {
	mu     sync.Mutex
	loaded bool
}

func (e *memEngine) Load(context.Context, sdk.LoadRequest) (*sdk.LoadResult, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.loaded = true
	return &sdk.LoadResult{ExecutionProvider: "mem"}, nil
}

func (e *memEngine) Unload(context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.loaded = false
	return nil
}

func (e *memEngine) Warmup(ctx context.Context, req sdk.WarmupRequest) ([]sdk.BatchTiming, error) {
	var out []sdk.BatchTiming
	for i := 0; i < req.Batches; i++ {
		bt, err := e.Generate(ctx, req.GenerateRequest, func(sdk.RequestResult) error { return nil })
		if err != nil {
			return nil, err
		}
		out = append(out, *bt)
	}
	return out, nil
}

func (e *memEngine) Generate(ctx context.Context, req sdk.GenerateRequest, emit func(sdk.RequestResult) error) (*sdk.BatchTiming, error) {
	e.mu.Lock()
	loaded := e.loaded
	e.mu.Unlock()
	switch {
	case !loaded:
		return nil, fmt.Errorf("generate before load: %w", sdk.ErrFailedPrecondition)
	case len(req.Prompts) == 0:
		return nil, fmt.Errorf("no prompts: %w", sdk.ErrInvalidArgument)
	case req.Decoding.MaxNewTokens <= 0:
		return nil, fmt.Errorf("max_new_tokens %d: %w", req.Decoding.MaxNewTokens, sdk.ErrInvalidArgument)
	}
	start := clock.Mono()
	results := make([]sdk.RequestResult, len(req.Prompts))
	bt := &sdk.BatchTiming{StartMonoNS: start, Requests: len(req.Prompts)}
	for i, p := range req.Prompts {
		results[i] = sdk.RequestResult{ID: p.ID, Index: i, InputTokens: max(1, len(p.Text)), StartMonoNS: start, FinishReason: "length"}
		bt.InputTokens += results[i].InputTokens
	}
	for step := 0; step < req.Decoding.MaxNewTokens; step++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		time.Sleep(200 * time.Microsecond)
		now := clock.Mono()
		if step == 0 {
			bt.FirstTokenMonoNS = now
		}
		for i := range results {
			results[i].OutputIDs = append(results[i].OutputIDs, int32(1+(step+i)%200))
			results[i].TokenMonoNS = append(results[i].TokenMonoNS, now)
		}
		bt.Steps++
	}
	bt.EndMonoNS = clock.Mono()
	for _, r := range results {
		bt.OutputTokens += len(r.OutputIDs)
		if err := emit(r); err != nil {
			return nil, err
		}
	}
	return bt, nil
}

// memSource is a 100 W node counter defined on the absolute clock.
type memSource struct{}

func (memSource) Read(context.Context, bool) ([]sampler.Reading, error) {
	r := sampler.NewReading("mem:node")
	r.MonoNS = clock.Mono()
	r.Counter = uint64(r.MonoNS / 10) // 100 W = 100 µJ/µs = 1 µJ per 10 ns
	return []sampler.Reading{r}, nil
}

func (memSource) Close() error { return nil }

var memDomain = sdk.Domain{ID: "mem:node", Kind: sdk.DomainNode, Scope: sdk.ScopeNode, Method: sdk.MethodCounter,
	Confidence: sdk.ConfidenceSimulated, Available: true, Resolution: 1, UpdatePeriod: time.Millisecond}

type memMeter struct{ sampler.Sessions }

func newMemMeter() *memMeter {
	m := &memMeter{}
	m.Offer = func(context.Context) (*sampler.Offer, error) {
		return &sampler.Offer{Domains: []sdk.Domain{memDomain}, Policy: sampler.Policy{DefaultInterval: 10 * time.Millisecond},
			Open: func(_ context.Context, p sampler.Plan) (*sampler.Opened, error) {
				return &sampler.Opened{Source: memSource{}, Domains: []sampler.Spec{{Domain: memDomain}}, Interval: p.Interval}, nil
			}}, nil
	}
	return m
}

func (m *memMeter) Inventory(context.Context) ([]sdk.Domain, error) {
	return []sdk.Domain{memDomain}, nil
}

func (m *memMeter) Environment(context.Context) (*sdk.Environment, error) {
	return &sdk.Environment{Facts: map[string]string{"meter": "mem"}}, nil
}

type memRepo struct {
	mu      sync.Mutex
	files   map[string][]byte
	markers map[string]*sdk.Marker
}

func newMemRepo() *memRepo {
	return &memRepo{files: map[string][]byte{}, markers: map[string]*sdk.Marker{}}
}

func checkID(exp string, rank int) error {
	if exp == "" || strings.ContainsAny(exp, `/\`) || strings.HasPrefix(exp, ".") || rank < 0 {
		return fmt.Errorf("experiment %q rank %d: %w", exp, rank, sdk.ErrInvalidArgument)
	}
	return nil
}

func hexsum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func (r *memRepo) put(key string, data []byte, overwrite bool) (*sdk.Stored, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.files[key]; ok && !overwrite {
		return nil, fmt.Errorf("%s: %w", key, sdk.ErrAlreadyExists)
	}
	r.files[key] = append([]byte(nil), data...)
	return &sdk.Stored{Path: key, Size: int64(len(data)), SHA256: hexsum(data)}, nil
}

func (r *memRepo) get(key string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.files[key]
	if !ok {
		return nil, fmt.Errorf("%s: %w", key, sdk.ErrNotFound)
	}
	return append([]byte(nil), b...), nil
}

func rawKey(exp string, rank int) string { return fmt.Sprintf("raw/%s/%d", exp, rank) }

func (r *memRepo) SaveRaw(_ context.Context, exp string, rank int, data []byte) (*sdk.Stored, error) {
	if err := checkID(exp, rank); err != nil {
		return nil, err
	}
	return r.put(rawKey(exp, rank), data, false)
}

func (r *memRepo) MarkComplete(_ context.Context, exp string, rank int, sum string) (*sdk.Marker, error) {
	if err := checkID(exp, rank); err != nil {
		return nil, err
	}
	b, err := r.get(rawKey(exp, rank))
	if err != nil {
		return nil, err
	}
	if hexsum(b) != sum {
		return nil, fmt.Errorf("sha256 mismatch: %w", sdk.ErrFailedPrecondition)
	}
	m := &sdk.Marker{Rank: rank, SHA256: sum, Path: rawKey(exp, rank), TimeUnixNS: time.Now().UnixNano()}
	r.mu.Lock()
	r.markers[rawKey(exp, rank)] = m
	r.mu.Unlock()
	return m, nil
}

func (r *memRepo) ranks(exp string) []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int
	for k := range r.files {
		var rank int
		if _, err := fmt.Sscanf(k, "raw/"+exp+"/%d", &rank); err == nil && k == rawKey(exp, rank) {
			out = append(out, rank)
		}
	}
	sort.Ints(out)
	return out
}

func (r *memRepo) ListRaw(_ context.Context, exp string) ([]sdk.RawEntry, error) {
	var out []sdk.RawEntry
	for _, rank := range r.ranks(exp) {
		b, _ := r.get(rawKey(exp, rank))
		r.mu.Lock()
		m := r.markers[rawKey(exp, rank)]
		r.mu.Unlock()
		out = append(out, sdk.RawEntry{Rank: rank, Size: int64(len(b)), SHA256: hexsum(b), Marker: m})
	}
	return out, nil
}

func (r *memRepo) LoadRaw(_ context.Context, exp string, rank int) ([]byte, error) {
	if err := checkID(exp, rank); err != nil {
		return nil, err
	}
	return r.get(rawKey(exp, rank))
}

func (r *memRepo) SaveAggregated(_ context.Context, exp string, data []byte, overwrite bool) (*sdk.Stored, error) {
	if err := checkID(exp, 0); err != nil {
		return nil, err
	}
	return r.put("agg/"+exp, data, overwrite)
}

func (r *memRepo) LoadAggregated(_ context.Context, exp string) ([]byte, error) {
	return r.get("agg/" + exp)
}

func (r *memRepo) SaveManifest(_ context.Context, exp string, data []byte) (*sdk.Stored, error) {
	if err := checkID(exp, 0); err != nil {
		return nil, err
	}
	return r.put("man/"+exp, data, true)
}

func (r *memRepo) LoadManifest(_ context.Context, exp string) ([]byte, error) {
	return r.get("man/" + exp)
}

func (r *memRepo) List(context.Context) ([]sdk.Experiment, error) {
	r.mu.Lock()
	exps := map[string]bool{}
	for k := range r.files {
		parts := strings.Split(k, "/")
		exps[parts[1]] = true
	}
	r.mu.Unlock()
	var out []sdk.Experiment
	for id := range exps {
		e := sdk.Experiment{ID: id, RawRanks: r.ranks(id)}
		for _, rank := range e.RawRanks {
			r.mu.Lock()
			if r.markers[rawKey(id, rank)] != nil {
				e.CompletedRanks = append(e.CompletedRanks, rank)
			}
			r.mu.Unlock()
		}
		_, errA := r.get("agg/" + id)
		_, errM := r.get("man/" + id)
		e.Aggregated, e.Manifest = errA == nil, errM == nil
		out = append(out, e)
	}
	return out, nil
}

// goodPlugin serves every kind correctly.
func goodPlugin() *sdk.Plugin {
	return &sdk.Plugin{
		Name: "good", Version: "1.0.0",
		Schema: []sdk.ConfigKey{
			{Key: "interval", Type: sdk.TypeDuration, Default: "10ms", Doc: "sampling interval", Min: sdk.Bound(0.001)},
			{Key: "mode", Type: sdk.TypeString, Default: "fast", Doc: "how to run", Enum: []string{"fast", "slow"}},
			{Key: "threads", Type: sdk.TypeInt, Default: 1, Doc: "threads", Min: sdk.Bound(1), Max: sdk.Bound(64)},
		},
		Loader: memLoader{}, Engine: &memEngine{}, Energy: newMemMeter(), Repository: newMemRepo(),
	}
}
