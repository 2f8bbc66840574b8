package hostclient_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/lemctl/lemctl/sdk"
)

// Package sdk encodes what a plugin answers and decodes what the host asks; this package does
// the reverse, and both convert artifacts and token ids both ways. This test fills every field
// of every type that crosses the RPC with a distinct non-zero value, sends it each way through a
// served plugin, and wants it back unchanged: a field one side forgets is caught here.

// fill sets every exported field reachable from v to a distinct non-zero value (slices and maps
// get two and one elements).
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(*n))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(*n) + 0.5)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(s.Index(i), n)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, n)
		fill(e, n)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(p.Elem(), n)
		v.Set(p)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), n)
			}
		}
	default:
		panic("fill: no rule for " + v.Type().String())
	}
}

var counter = struct {
	sync.Mutex
	n int
}{}

// filled returns a T with every field set.
func filled[T any]() T {
	counter.Lock()
	defer counter.Unlock()
	var v T
	fill(reflect.ValueOf(&v).Elem(), &counter.n)
	return v
}

// echo is a plugin of every kind that records what it is asked and answers filled values.
type echo struct {
	mu       sync.Mutex
	got      map[string]any
	artifact sdk.Artifact
	ids      [][]int32
	load     sdk.LoadResult
	batches  []sdk.BatchTiming
	results  []sdk.RequestResult
	batch    sdk.BatchTiming
	steps    []sdk.ServeStep
	domains  []sdk.Domain
	env      sdk.Environment
	session  sdk.Session
	meas     sdk.Measurement
	stored   sdk.Stored
	marker   sdk.Marker
	raw      []sdk.RawEntry
	exps     []sdk.Experiment
}

func newEcho() *echo {
	return &echo{got: map[string]any{}, artifact: filled[sdk.Artifact](), ids: filled[[][]int32](), load: filled[sdk.LoadResult](),
		batches: filled[[]sdk.BatchTiming](), results: filled[[]sdk.RequestResult](), batch: filled[sdk.BatchTiming](), steps: filled[[]sdk.ServeStep](),
		domains: filled[[]sdk.Domain](), env: filled[sdk.Environment](), session: filled[sdk.Session](), meas: filled[sdk.Measurement](),
		stored: filled[sdk.Stored](), marker: filled[sdk.Marker](), raw: filled[[]sdk.RawEntry](), exps: filled[[]sdk.Experiment]()}
}

func (e *echo) record(call string, v any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got[call] = v
}

func (e *echo) Resolve(context.Context, string) (*sdk.Artifact, error) {
	a := e.artifact
	return &a, nil
}
func (e *echo) Tokenize(context.Context, string, []string) ([][]int32, error) {
	return e.ids, nil
}
func (e *echo) Detokenize(_ context.Context, _ string, ids [][]int32) ([]string, error) {
	e.record("Detokenize", ids)
	return make([]string, len(ids)), nil
}
func (e *echo) Load(_ context.Context, req sdk.LoadRequest) (*sdk.LoadResult, error) {
	e.record("Load", req)
	r := e.load
	return &r, nil
}
func (e *echo) Warmup(_ context.Context, req sdk.WarmupRequest) ([]sdk.BatchTiming, error) {
	e.record("Warmup", req)
	return e.batches, nil
}
func (e *echo) Generate(_ context.Context, req sdk.GenerateRequest, emit func(sdk.RequestResult) error) (*sdk.BatchTiming, error) {
	e.record("Generate", req)
	for _, r := range e.results {
		if err := emit(r); err != nil {
			return nil, err
		}
	}
	b := e.batch
	return &b, nil
}
func (e *echo) Serve(_ context.Context, opts sdk.ServeOptions, in <-chan sdk.ServeRequest, emit func(sdk.ServeEvent) error) error {
	var got []sdk.ServeRequest
	for r := range in {
		got = append(got, r)
	}
	e.record("Serve", got)
	e.record("ServeOptions", opts)
	for _, st := range e.steps {
		if err := emit(sdk.ServeEvent{Step: &st}); err != nil {
			return err
		}
	}
	for _, r := range e.results {
		if err := emit(sdk.ServeEvent{Done: &r}); err != nil {
			return err
		}
	}
	return nil
}
func (e *echo) Unload(context.Context) error                          { return nil }
func (e *echo) Inventory(context.Context) ([]sdk.Domain, error)       { return e.domains, nil }
func (e *echo) Environment(context.Context) (*sdk.Environment, error) { v := e.env; return &v, nil }
func (e *echo) Start(_ context.Context, req sdk.StartRequest) (*sdk.Session, error) {
	e.record("Start", req)
	s := e.session
	return &s, nil
}
func (e *echo) Mark(_ context.Context, session, label string) (int64, error) {
	e.record("Mark", [2]string{session, label})
	return 42, nil
}
func (e *echo) Stop(context.Context, string) (*sdk.Measurement, error) { m := e.meas; return &m, nil }
func (e *echo) SaveRaw(_ context.Context, exp string, rank int, data []byte) (*sdk.Stored, error) {
	e.record("SaveRaw", fmt.Sprintln(exp, rank, string(data)))
	s := e.stored
	return &s, nil
}
func (e *echo) MarkComplete(_ context.Context, exp string, rank int, sha string) (*sdk.Marker, error) {
	e.record("MarkComplete", fmt.Sprintln(exp, rank, sha))
	m := e.marker
	return &m, nil
}
func (e *echo) ListRaw(context.Context, string) ([]sdk.RawEntry, error) { return e.raw, nil }
func (e *echo) LoadRaw(context.Context, string, int) ([]byte, error)    { return []byte("raw"), nil }
func (e *echo) SaveAggregated(_ context.Context, exp string, data []byte, overwrite bool) (*sdk.Stored, error) {
	e.record("SaveAggregated", fmt.Sprintln(exp, string(data), overwrite))
	s := e.stored
	return &s, nil
}
func (e *echo) LoadAggregated(context.Context, string) ([]byte, error) { return []byte("agg"), nil }
func (e *echo) SaveManifest(_ context.Context, exp string, data []byte) (*sdk.Stored, error) {
	e.record("SaveManifest", fmt.Sprintln(exp, string(data)))
	s := e.stored
	return &s, nil
}
func (e *echo) LoadManifest(context.Context, string) ([]byte, error) { return []byte("man"), nil }
func (e *echo) List(context.Context) ([]sdk.Experiment, error)       { return e.exps, nil }

func TestEveryFieldCrossesTheRPC(t *testing.T) {
	e := newEcho()
	c := connect(t, &sdk.Plugin{Name: "echo", Loader: e, Engine: e, Energy: e, Repository: e})
	ctx := context.Background()
	same := func(what string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s changed on the way:\n got %+v\nwant %+v", what, got, want)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	a, err := c.Loader().Resolve(ctx, "ref")
	must(err)
	same("Resolve's artifact (plugin to host)", *a, e.artifact)
	ids, err := c.Loader().Tokenize(ctx, "ref", []string{"x"})
	must(err)
	same("Tokenize's ids (plugin to host)", ids, e.ids)
	sent := filled[[][]int32]()
	_, err = c.Loader().Detokenize(ctx, "ref", sent)
	must(err)
	same("Detokenize's ids (host to plugin)", e.got["Detokenize"], sent)

	loadReq := filled[sdk.LoadRequest]()
	lr, err := c.Engine().Load(ctx, loadReq)
	must(err)
	same("LoadRequest, artifact included (host to plugin)", e.got["Load"], loadReq)
	same("LoadResult (plugin to host)", *lr, e.load)
	warm := filled[sdk.WarmupRequest]()
	bs, err := c.Engine().Warmup(ctx, warm)
	must(err)
	same("WarmupRequest (host to plugin)", e.got["Warmup"], warm)
	same("Warmup's batch timings (plugin to host)", bs, e.batches)
	gen := filled[sdk.GenerateRequest]()
	var results []sdk.RequestResult
	b, err := c.Engine().Generate(ctx, gen, func(r sdk.RequestResult) error { results = append(results, r); return nil })
	must(err)
	same("GenerateRequest (host to plugin)", e.got["Generate"], gen)
	same("RequestResults (plugin to host)", results, e.results)
	same("BatchTiming (plugin to host)", *b, e.batch)
	sub := filled[[]sdk.ServeRequest]()
	for i := range sub {
		sub[i].Cancel = false
	}
	sub = append(sub, sdk.ServeRequest{Prompt: sdk.Prompt{ID: "gone"}, Cancel: true})
	in := make(chan sdk.ServeRequest, len(sub))
	for _, r := range sub {
		in <- r
	}
	close(in)
	var steps []sdk.ServeStep
	var done []sdk.RequestResult
	ce, ok := c.Engine().(sdk.ContinuousEngine)
	if !ok {
		t.Fatal("the host's engine does not offer Serve")
	}
	must(ce.Serve(ctx, sdk.ServeOptions{StepEvents: true}, in, func(ev sdk.ServeEvent) error {
		if ev.Step != nil {
			steps = append(steps, *ev.Step)
		}
		if ev.Done != nil {
			done = append(done, *ev.Done)
		}
		return nil
	}))
	same("Serve's requests (host to plugin)", e.got["Serve"], sub)
	same("ServeOptions (host to plugin)", e.got["ServeOptions"], sdk.ServeOptions{StepEvents: true})
	same("Serve's steps (plugin to host)", steps, e.steps)
	same("Serve's results (plugin to host)", done, e.results)

	doms, err := c.Meter().Inventory(ctx)
	must(err)
	same("Inventory's domains", doms, e.domains)
	env, err := c.Meter().Environment(ctx)
	must(err)
	same("Environment", *env, e.env)
	start := filled[sdk.StartRequest]()
	s, err := c.Meter().Start(ctx, start)
	must(err)
	same("StartRequest (host to plugin)", e.got["Start"], start)
	same("Session (plugin to host)", *s, e.session)
	ns, err := c.Meter().Mark(ctx, "sess", "label")
	must(err)
	same("Mark's arguments", e.got["Mark"], [2]string{"sess", "label"})
	same("Mark's instant", ns, int64(42))
	m, err := c.Meter().Stop(ctx, "sess")
	must(err)
	same("Measurement (plugin to host)", *m, e.meas)

	st, err := c.Repository().SaveRaw(ctx, "exp", 3, []byte("data"))
	must(err)
	same("SaveRaw's arguments", e.got["SaveRaw"], "exp 3 data\n")
	same("Stored", *st, e.stored)
	_, err = c.Repository().SaveAggregated(ctx, "exp", []byte("agg"), true)
	must(err)
	same("SaveAggregated's arguments", e.got["SaveAggregated"], "exp agg true\n")
	_, err = c.Repository().SaveManifest(ctx, "exp", []byte("man"))
	must(err)
	same("SaveManifest's arguments", e.got["SaveManifest"], "exp man\n")
	mk, err := c.Repository().MarkComplete(ctx, "exp", 3, "abc")
	must(err)
	same("MarkComplete's arguments", e.got["MarkComplete"], "exp 3 abc\n")
	same("Marker", *mk, e.marker)
	raw, err := c.Repository().ListRaw(ctx, "exp")
	must(err)
	same("RawEntries", raw, e.raw)
	exps, err := c.Repository().List(ctx)
	must(err)
	same("Experiments", exps, e.exps)
	for name, load := range map[string]func() ([]byte, error){
		"raw": func() ([]byte, error) { return c.Repository().LoadRaw(ctx, "exp", 3) },
		"agg": func() ([]byte, error) { return c.Repository().LoadAggregated(ctx, "exp") },
		"man": func() ([]byte, error) { return c.Repository().LoadManifest(ctx, "exp") },
	} {
		data, err := load()
		must(err)
		same("Load "+name, string(data), name)
	}
}

// sentinelRepo fails List with the error it is given.
type sentinelRepo struct {
	sdk.Repository
	err error
}

func (r *sentinelRepo) List(context.Context) ([]sdk.Experiment, error) { return nil, r.err }

// TestEverySentinelCrossesTheRPC: package sdk maps each sentinel to a gRPC code and this package
// maps the codes back; a sentinel missing on either side is caught here.
func TestEverySentinelCrossesTheRPC(t *testing.T) {
	repo := &sentinelRepo{}
	c := connect(t, &sdk.Plugin{Name: "sentinels", Repository: repo})
	for _, s := range []error{sdk.ErrInvalidArgument, sdk.ErrNotFound, sdk.ErrAlreadyExists, sdk.ErrFailedPrecondition,
		sdk.ErrUnavailable, sdk.ErrUnimplemented, context.Canceled, context.DeadlineExceeded} {
		repo.err = fmt.Errorf("wrapped: %w", s)
		_, err := c.Repository().List(context.Background())
		if !errors.Is(err, s) {
			t.Errorf("a plugin's %q came back as %v, which does not match it", s, err)
		}
	}
}
