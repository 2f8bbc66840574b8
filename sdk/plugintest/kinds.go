package plugintest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/lemctl/lemctl/sdk"
)

var defaultTexts = []string{"Hello, world!", "The quick brown fox jumps over the lazy dog.", "  spaces\tand\nnewlines  ", "numbers 12345 and ünïcödé ✓"}

func (s *suite) checkLoader() {
	o := s.opts.Loader
	if o.Reference == "" {
		s.fail("loader", "Options.Loader.Reference is empty: the suite needs a reference the loader resolves")
		return
	}
	ctx, cancel := s.ctx()
	defer cancel()
	l := s.c.Loader()
	a, err := l.Resolve(ctx, o.Reference)
	if err != nil {
		s.fail("loader", "Resolve(%q): %v", o.Reference, err)
		return
	}
	switch {
	case a.Format == sdk.FormatServed:
		// A served model has no files, hash or parameter count: its name is the reference.
		if a.Reference != o.Reference {
			s.fail("loader", "served artifact's reference %q, want %q", a.Reference, o.Reference)
		}
	case a.Path == "":
		s.fail("loader", "artifact has no path")
	case len(a.SHA256) != 64:
		s.fail("loader", "artifact sha256 %q is not 64 hex digits", a.SHA256)
	case a.Parameters <= 0:
		s.fail("loader", "artifact reports %d parameters", a.Parameters)
	case a.FLOPs.PerToken <= 0:
		s.fail("loader", "artifact reports FLOPs per token %d", a.FLOPs.PerToken)
	case a.ContextLength <= 0:
		s.fail("loader", "artifact reports context length %d", a.ContextLength)
	}
	if _, err := l.Resolve(ctx, "plugintest-no-such-scheme://nothing"); err == nil {
		s.fail("loader", "Resolve of a nonsense reference succeeded")
	}
	texts := o.Texts
	if len(texts) == 0 {
		texts = defaultTexts
	}
	ids, err := l.Tokenize(ctx, o.Reference, texts)
	if err != nil {
		s.fail("loader", "Tokenize: %v", err)
		return
	}
	if len(ids) != len(texts) {
		s.fail("loader", "Tokenize of %d texts returned %d id lists", len(texts), len(ids))
		return
	}
	for i, t := range texts {
		if t != "" && len(ids[i]) == 0 {
			s.fail("loader", "Tokenize(%q) returned no ids", t)
		}
	}
	rt := o.RoundTrip
	if len(rt) == 0 {
		rt = texts
	}
	rtIDs, err := l.Tokenize(ctx, o.Reference, rt)
	if err != nil || len(rtIDs) != len(rt) {
		s.fail("loader", "Tokenize for round trip: %v", err)
		return
	}
	back, err := l.Detokenize(ctx, o.Reference, rtIDs)
	if err != nil {
		s.fail("loader", "Detokenize: %v", err)
		return
	}
	for i := range rt {
		if i >= len(back) || back[i] != rt[i] {
			got := ""
			if i < len(back) {
				got = back[i]
			}
			s.fail("loader", "Detokenize(Tokenize(%q)) = %q", rt[i], got)
		}
	}
}

func (s *suite) engineRequest() sdk.GenerateRequest {
	o := s.opts.Engine
	req := sdk.GenerateRequest{Prompts: o.Prompts, Decoding: o.Decoding}
	if len(req.Prompts) == 0 {
		req.Prompts = []sdk.Prompt{{ID: "a", Text: "Hello"}, {ID: "b", Text: "A somewhat longer prompt than the first one."}, {ID: "c", Text: "Three"}}
	}
	if req.Decoding.MaxNewTokens == 0 {
		req.Decoding.MaxNewTokens = 4
		req.Decoding.Greedy = true
	}
	return req
}

func (s *suite) checkEngine() {
	o := s.opts.Engine
	if o.Artifact == nil && s.c.Loader() != nil && s.opts.Loader.Reference != "" {
		// A plugin that is its own loader: load what it resolves (the way `lemctl plugins
		// check --reference` exercises a binary).
		ctx, cancel := s.ctx()
		a, err := s.c.Loader().Resolve(ctx, s.opts.Loader.Reference)
		cancel()
		if err != nil {
			s.fail("engine", "Resolve(%q) for the engine's artifact: %v", s.opts.Loader.Reference, err)
			return
		}
		o.Artifact = a
	}
	if o.Artifact == nil {
		s.fail("engine", "Options.Engine.Artifact is nil: the suite needs an artifact the engine loads (or a plugin that is also a loader, and Options.Loader.Reference)")
		return
	}
	e := s.c.Engine()
	ctx, cancel := s.ctx()
	defer cancel()
	req := s.engineRequest()
	_, err := e.Generate(ctx, req, func(sdk.RequestResult) error { return nil })
	if !errors.Is(err, sdk.ErrFailedPrecondition) {
		s.fail("engine", "Generate before Load must fail with ErrFailedPrecondition, got %v", err)
	}
	if _, err := e.Load(ctx, sdk.LoadRequest{Artifact: *o.Artifact, Device: o.Device}); err != nil {
		s.fail("engine", "Load: %v", err)
		return
	}
	defer func() {
		if err := e.Unload(ctx); err != nil {
			s.fail("engine", "Unload: %v", err)
		}
		if err := e.Unload(ctx); err != nil {
			s.fail("engine", "a second Unload must not fail: %v", err)
		}
	}()

	var results []sdk.RequestResult
	bt, err := e.Generate(ctx, req, func(r sdk.RequestResult) error { results = append(results, r); return nil })
	if err != nil {
		s.fail("engine", "Generate: %v", err)
		return
	}
	s.checkBatch(req, results, bt)
	s.checkInputTokens(ctx, req, results)

	empty := req
	empty.Prompts = nil
	if _, err := e.Generate(ctx, empty, func(sdk.RequestResult) error { return nil }); !errors.Is(err, sdk.ErrInvalidArgument) {
		s.fail("engine", "Generate with zero prompts must fail with ErrInvalidArgument, got %v", err)
	}
	zero := req
	zero.Decoding.MaxNewTokens = -1
	if _, err := e.Generate(ctx, zero, func(sdk.RequestResult) error { return nil }); !errors.Is(err, sdk.ErrInvalidArgument) {
		s.fail("engine", "Generate with max_new_tokens ≤ 0 must fail with ErrInvalidArgument, got %v", err)
	}

	// An emit error stops the stream and comes back.
	stop := errors.New("plugintest: stop")
	if _, err := e.Generate(ctx, req, func(sdk.RequestResult) error { return stop }); !errors.Is(err, stop) {
		s.fail("engine", "Generate must return the emit callback's error, got %v", err)
	}

	// Cancelling the context ends Generate promptly.
	long := req
	long.Decoding.MaxNewTokens = 1 << 20
	long.Decoding.IgnoreEOS = true
	cctx, ccancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := e.Generate(cctx, long, func(sdk.RequestResult) error { return nil })
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if s.engineObserver != nil {
		drain(s.engineObserver.returned)
	}
	ccancel()
	select {
	case err := <-done:
		if err == nil {
			s.fail("engine", "Generate of 2^20 tokens returned no error after its context was cancelled")
		}
	case <-time.After(5 * time.Second):
		s.fail("engine", "Generate did not return within 5 s of its context being cancelled")
		<-done
	}
	if s.engineObserver != nil {
		select {
		case <-s.engineObserver.returned:
		case <-time.After(5 * time.Second):
			s.fail("engine", "the plugin went on generating for 5 s after its context was cancelled")
		}
	}

	timings, err := e.Warmup(ctx, sdk.WarmupRequest{GenerateRequest: req, Batches: 2})
	if err != nil {
		s.fail("engine", "Warmup: %v", err)
	} else if len(timings) != 2 {
		s.fail("engine", "Warmup of 2 batches returned %d timings", len(timings))
	}
}

func (s *suite) checkBatch(req sdk.GenerateRequest, results []sdk.RequestResult, bt *sdk.BatchTiming) {
	if len(results) != len(req.Prompts) {
		s.fail("engine", "Generate of %d prompts emitted %d results (one per request, never per token)", len(req.Prompts), len(results))
	}
	seen := map[string]bool{}
	out := 0
	for _, r := range results {
		if seen[r.ID] {
			s.fail("engine", "request %q emitted twice", r.ID)
		}
		seen[r.ID] = true
		if r.FinishReason == "error" {
			s.fail("engine", "request %q failed (%s): %s", r.ID, r.ErrorKind, r.Error)
		}
		n := r.Tokens()
		out += n
		// A count without ids (a served model's usage or tokenizer count) may come without
		// per-token times, when the tokens per streamed chunk are not known.
		counted := len(r.OutputIDs) == 0 && (r.TokenCount == "usage" || r.TokenCount == "tokenizer")
		if len(r.TokenMonoNS) != n && !(counted && len(r.TokenMonoNS) == 0) {
			s.fail("engine", "request %q: %d token times for %d tokens", r.ID, len(r.TokenMonoNS), n)
		}
		if n == 0 || n > req.Decoding.MaxNewTokens {
			s.fail("engine", "request %q: %d output tokens, want 1..%d", r.ID, n, req.Decoding.MaxNewTokens)
		}
		if r.InputTokens <= 0 {
			s.fail("engine", "request %q: %d input tokens", r.ID, r.InputTokens)
		}
		prev := r.StartMonoNS
		for i, ts := range r.TokenMonoNS {
			if ts < prev {
				s.fail("engine", "request %q: token %d time %d is before %d (timestamps must not go backwards)", r.ID, i, ts, prev)
				break
			}
			prev = ts
		}
	}
	for _, p := range req.Prompts {
		if !seen[p.ID] {
			s.fail("engine", "request %q was never emitted", p.ID)
		}
	}
	if bt == nil {
		s.fail("engine", "no batch timing")
		return
	}
	if !(bt.StartMonoNS > 0 && bt.StartMonoNS <= bt.FirstTokenMonoNS && bt.FirstTokenMonoNS <= bt.EndMonoNS) {
		s.fail("engine", "batch timing out of order: start %d, first token %d, end %d", bt.StartMonoNS, bt.FirstTokenMonoNS, bt.EndMonoNS)
	}
	if bt.OutputTokens != out || bt.Requests != len(results) {
		s.fail("engine", "batch timing says %d requests / %d output tokens, results carry %d / %d", bt.Requests, bt.OutputTokens, len(results), out)
	}
}

// checkInputTokens holds a plugin that is both loader and engine to one tokenizer: the input
// tokens the engine reports for a text prompt that was not truncated must be exactly the number
// of ids its own loader gives that text. Tokens per second and energy per token are divided by
// these counts, so a mismatch skews every per-token figure.
func (s *suite) checkInputTokens(ctx context.Context, req sdk.GenerateRequest, results []sdk.RequestResult) {
	l := s.c.Loader()
	ref := s.opts.Loader.Reference
	if l == nil || ref == "" {
		return
	}
	s.ran(CheckEngineTokens)
	var texts []string
	var ids []string
	for _, p := range req.Prompts {
		if len(p.IDs) == 0 && p.Text != "" {
			texts = append(texts, p.Text)
			ids = append(ids, p.ID)
		}
	}
	if len(texts) == 0 {
		return
	}
	toks, err := l.Tokenize(ctx, ref, texts)
	if err != nil || len(toks) != len(texts) {
		s.fail(CheckEngineTokens, "Tokenize(%q) of the engine's prompts: %d id lists for %d texts, %v", ref, len(toks), len(texts), err)
		return
	}
	want := map[string]int{}
	for i, id := range ids {
		want[id] = len(toks[i])
	}
	for _, r := range results {
		n, ok := want[r.ID]
		if !ok || r.Truncated {
			continue
		}
		if r.InputTokens != n {
			s.fail(CheckEngineTokens, "request %q: the engine reports %d input tokens, the plugin's loader tokenizes its prompt into %d (%q)", r.ID, r.InputTokens, n, ref)
		}
	}
}

func (s *suite) checkEnergy() {
	m := s.c.Meter()
	ctx, cancel := s.ctx()
	defer cancel()
	doms, err := m.Inventory(ctx)
	if err != nil {
		s.fail("energy", "Inventory: %v", err)
		return
	}
	ids := map[string]bool{}
	available := 0
	for _, d := range doms {
		if d.ID == "" || ids[d.ID] {
			s.fail("energy", "domain id %q is empty or repeated", d.ID)
		}
		ids[d.ID] = true
		if !oneOf(d.Kind, sdk.DomainGPU, sdk.DomainPackage, sdk.DomainDRAM, sdk.DomainCore, sdk.DomainUncore, sdk.DomainPsys, sdk.DomainNode, sdk.DomainOther) {
			s.fail("energy", "domain %q has unknown kind %q", d.ID, d.Kind)
		}
		if !oneOf(d.Scope, sdk.ScopeDevice, sdk.ScopeSocket, sdk.ScopeNode, sdk.ScopeProcess) {
			s.fail("energy", "domain %q has unknown scope %q", d.ID, d.Scope)
		}
		if !oneOf(d.Method, sdk.MethodCounter, sdk.MethodPowerIntegration, sdk.MethodEstimate) {
			s.fail("energy", "domain %q has unknown method %q", d.ID, d.Method)
		}
		if d.Method == sdk.MethodEstimate && d.Confidence != sdk.ConfidenceEstimate {
			s.fail("energy", "domain %q is an estimate but its confidence is %q", d.ID, d.Confidence)
		}
		if !d.Available && d.Reason == "" {
			s.fail("energy", "domain %q is unavailable without a reason", d.ID)
		}
		if msg := deviceProblem(d.Device); msg != "" {
			s.fail("energy", "domain %q: device %s (docs/protocol.md, \"Devices\")", d.ID, msg)
		}
		if d.Available {
			available++
		}
	}
	if s.opts.Energy.RequireAvailable && available == 0 {
		s.fail("energy", "no domain is available")
	}
	s.checkSessionPolicy(ctx, m, doms)
	if _, err := m.Stop(ctx, "plugintest-never-started"); !errors.Is(err, sdk.ErrNotFound) {
		s.fail("energy", "Stop without Start must fail with ErrNotFound, got %v", err)
	}
	if _, err := m.Mark(ctx, "plugintest-never-started", "x"); !errors.Is(err, sdk.ErrNotFound) {
		s.fail("energy", "Mark of an unknown session must fail with ErrNotFound, got %v", err)
	}
	dur := s.opts.Energy.Session
	if dur <= 0 {
		dur = 300 * time.Millisecond
	}
	// Two sessions at once (two Starts without a Stop) must be independent.
	s1, err := m.Start(ctx, sdk.StartRequest{Label: "plugintest-1"})
	if err != nil {
		s.fail("energy", "Start: %v", err)
		return
	}
	s2, err := m.Start(ctx, sdk.StartRequest{Label: "plugintest-2"})
	if err != nil {
		s.fail("energy", "a second Start while one session is open: %v", err)
		_, _ = m.Stop(ctx, s1.ID)
		return
	}
	if s1.ID == s2.ID {
		s.fail("energy", "two sessions got the same id %q", s1.ID)
	}
	time.Sleep(dur / 2)
	markNS, err := m.Mark(ctx, s1.ID, "plugintest-mark")
	if err != nil {
		s.fail("energy", "Mark: %v", err)
	}
	time.Sleep(dur / 2)
	for _, sess := range []*sdk.Session{s2, s1} {
		meas, err := m.Stop(ctx, sess.ID)
		if err != nil {
			s.fail("energy", "Stop(%s): %v", sess.ID, err)
			continue
		}
		s.checkMeasurement(meas, sess == s1, markNS)
		if _, err := m.Stop(ctx, sess.ID); !errors.Is(err, sdk.ErrNotFound) {
			s.fail("energy", "a second Stop of session %s must fail with ErrNotFound, got %v", sess.ID, err)
		}
	}
}

// checkSessionPolicy checks the start-request rules of sdk.StartRequest (sdk/sampler's Policy):
// a negative interval and an unknown domain are ErrInvalidArgument, the latter naming the id;
// an empty list covers every available domain of the inventory; a repeated id is one domain.
func (s *suite) checkSessionPolicy(ctx context.Context, m sdk.Meter, inventory []sdk.Domain) {
	stop := func(sess *sdk.Session) {
		if _, err := m.Stop(ctx, sess.ID); err != nil {
			s.fail("energy", "Stop(%s): %v", sess.ID, err)
		}
	}
	if sess, err := m.Start(ctx, sdk.StartRequest{Label: "plugintest-policy", Interval: -time.Millisecond}); !errors.Is(err, sdk.ErrInvalidArgument) {
		s.fail("energy", "Start with a negative interval must fail with ErrInvalidArgument, got %v", err)
		if err == nil {
			stop(sess)
		}
	}
	const unknown = "plugintest-no-such-domain"
	if sess, err := m.Start(ctx, sdk.StartRequest{Label: "plugintest-policy", Domains: []string{unknown}}); !errors.Is(err, sdk.ErrInvalidArgument) || !strings.Contains(err.Error(), unknown) {
		s.fail("energy", "Start with an unknown domain must fail with ErrInvalidArgument naming it, got %v", err)
		if err == nil {
			stop(sess)
		}
	}
	sess, err := m.Start(ctx, sdk.StartRequest{Label: "plugintest-policy"})
	if err != nil {
		s.fail("energy", "Start: %v", err)
		return
	}
	got := map[string]bool{}
	for _, d := range sess.Domains {
		got[d.ID] = true
	}
	for _, d := range inventory {
		if d.Available && !got[d.ID] {
			s.fail("energy", "a session with no domain list lacks the available domain %q", d.ID)
		}
	}
	stop(sess)
	if len(inventory) == 0 {
		return
	}
	id := inventory[0].ID
	sess, err = m.Start(ctx, sdk.StartRequest{Label: "plugintest-policy", Domains: []string{id, id}})
	if err != nil {
		s.fail("energy", "Start of domain %q named twice: %v", id, err)
		return
	}
	if len(sess.Domains) != 1 || sess.Domains[0].ID != id {
		s.fail("energy", "a session of domain %q named twice has domains %v, want it once", id, sess.Domains)
	}
	stop(sess)
}

func (s *suite) checkMeasurement(meas *sdk.Measurement, wantMark bool, markNS int64) {
	if meas.StopMonoNS < meas.StartMonoNS {
		s.fail("energy", "session stops (%d) before it starts (%d)", meas.StopMonoNS, meas.StartMonoNS)
	}
	if wantMark {
		found := false
		for _, mk := range meas.Marks {
			found = found || (mk.Label == "plugintest-mark" && mk.MonoNS == markNS)
		}
		if !found {
			s.fail("energy", "the mark taken at %d is missing from the measurement %v", markNS, meas.Marks)
		}
	}
	for _, d := range meas.Domains {
		if !d.Domain.Available {
			if d.Domain.Reason == "" {
				s.fail("energy", "domain %q unavailable without a reason", d.Domain.ID)
			}
			continue
		}
		if len(d.Samples) < 2 {
			s.fail("energy", "domain %q has %d samples, want ≥ 2", d.Domain.ID, len(d.Samples))
			continue
		}
		for i := 1; i < len(d.Samples); i++ {
			a, b := d.Samples[i-1], d.Samples[i]
			if b.MonoNS < a.MonoNS {
				s.fail("energy", "domain %q: sample %d time goes backwards", d.Domain.ID, i)
				break
			}
			if b.Energy < a.Energy {
				s.fail("energy", "domain %q: cumulative energy decreases at sample %d (%d → %d µJ)", d.Domain.ID, i, a.Energy, b.Energy)
				break
			}
		}
		if last := d.Samples[len(d.Samples)-1].Energy; d.Energy != last {
			s.fail("energy", "domain %q: energy %d µJ differs from its last cumulative sample %d µJ", d.Domain.ID, d.Energy, last)
		}
		s.checkPower(d)
	}
}

// PowerMargin is how far above a domain's declared maximum power the average power of a
// session may be before the energy-units rule fails it: devices exceed their limit in short
// bursts, and a counter's update period is allowed for separately.
const PowerMargin = 1.5

// PowerFloorW returns the least average power, in watts, a domain of each kind can plausibly draw
// while the suite measures it: an idle GPU draws tens of watts, an idle CPU package or a node far
// more than these floors. A counter in millijoules sent as microjoules reads 1000 times too low
// and falls under them. Kinds not listed (core, uncore, other) can read zero and have no floor.
func PowerFloorW(kind string) float64 {
	switch kind {
	case sdk.DomainGPU, sdk.DomainNode:
		return 1
	case sdk.DomainPsys:
		return 0.5
	case sdk.DomainPackage:
		return 0.1
	case sdk.DomainDRAM:
		return 0.01
	}
	return 0
}

// PowerCeilingW returns the bound on the average power of a domain that declares no maximum power. A counter
// in nanojoules sent as microjoules reads 1000 times too high and exceeds it. Kinds not listed
// (node, other) have no ceiling without a declared maximum.
func PowerCeilingW(kind string) float64 {
	switch kind {
	case sdk.DomainGPU:
		return 2000
	case sdk.DomainPackage, sdk.DomainCore:
		return 1000
	case sdk.DomainUncore, sdk.DomainDRAM:
		return 500
	case sdk.DomainPsys:
		return 5000
	}
	return 0
}

// minPowerWindow is the shortest session the energy-units rule judges.
const minPowerWindow = 50 * time.Millisecond

// checkPower is the energy-units rule: the average power a domain's counter implies over the
// session lies between the floor of its kind and its declared maximum (with PowerMargin and
// one counter update period at each edge), so a counter sent in the wrong unit fails.
func (s *suite) checkPower(d sdk.DomainEnergy) {
	first, last := d.Samples[0], d.Samples[len(d.Samples)-1]
	window := time.Duration(last.MonoNS - first.MonoNS)
	if window < minPowerWindow || last.Energy < first.Energy {
		return
	}
	s.ran(CheckEnergyUnits)
	dt := window.Seconds()
	joules := (last.Energy - first.Energy).Joules()
	watts := joules / dt
	edge := 2 * d.Domain.UpdatePeriod.Seconds()
	ceiling, declared := d.Domain.MaxPower.Watts(), true
	if ceiling <= 0 {
		ceiling, declared = PowerCeilingW(d.Domain.Kind), false
	}
	if ceiling > 0 {
		allowed := ceiling*PowerMargin*(dt+edge)/dt + d.Domain.Resolution.Joules()/dt
		if watts > allowed {
			what := fmt.Sprintf("the %g W ceiling of a %s domain that declares no max power", ceiling, d.Domain.Kind)
			if declared {
				what = fmt.Sprintf("its declared max power %g W", ceiling)
			}
			s.fail(CheckEnergyUnits, "domain %q: the counter rose %d µJ in %.3f s, an average of %.4g W, above %s (×%g): is the counter in a smaller unit than µJ?",
				d.Domain.ID, uint64(last.Energy-first.Energy), dt, watts, what, PowerMargin)
		}
	}
	floor := PowerFloorW(d.Domain.Kind)
	if floor <= 0 || dt <= edge || floor*(dt-edge) < 2*d.Domain.Resolution.Joules() || last.Energy == first.Energy {
		// No floor; or the counter is too coarse for this session to tell; or it never moved,
		// which is a stuck counter (the meter's counter_stuck finding), not a wrong unit.
		return
	}
	if upper := joules / (dt - edge); upper < floor {
		s.fail(CheckEnergyUnits, "domain %q: the counter rose %d µJ in %.3f s, an average of %.4g W, below the %g W floor of a %s domain: is the counter in a larger unit than µJ (mJ sent as µJ)?",
			d.Domain.ID, uint64(last.Energy-first.Energy), dt, watts, floor, d.Domain.Kind)
	}
}

// deviceProblem says what is wrong with a domain's device description, or "" when nothing is
// (or there is none). A device without a visibility environment is allowed: the host names it
// but will not launch a worker on it.
func deviceProblem(d *sdk.DeviceInfo) string {
	if d == nil {
		return ""
	}
	switch {
	case d.ID == "" || strings.ContainsAny(d.ID, " \t\n"):
		return fmt.Sprintf("id %q is empty or has spaces", d.ID)
	case d.Vendor == "" || d.Vendor != strings.ToLower(d.Vendor) || strings.ContainsAny(d.Vendor, " \t\n"):
		return fmt.Sprintf("vendor %q is not a lower-case name", d.Vendor)
	case d.Index < 0:
		return fmt.Sprintf("index %d is negative", d.Index)
	}
	for k := range d.VisibilityEnv {
		if k == "" || strings.ContainsAny(k, "= \t\n") {
			return fmt.Sprintf("visibility environment variable name %q is not a name", k)
		}
	}
	return ""
}

func oneOf(v string, valid ...string) bool {
	for _, x := range valid {
		if v == x {
			return true
		}
	}
	return false
}

func (s *suite) checkRepository() {
	r := s.c.Repository()
	ctx, cancel := s.ctx()
	defer cancel()
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	exp := "plugintest-" + hex.EncodeToString(nonce[:])

	// 3.5 MiB crosses the 1 MiB chunk size and the default 4 MiB gRPC limit if unchunked.
	payload := make([]byte, 3<<20+512<<10)
	_, _ = rand.Read(payload)
	sum := sha256.Sum256(payload)
	hexSum := hex.EncodeToString(sum[:])

	st, err := r.SaveRaw(ctx, exp, 0, payload)
	if err != nil {
		s.fail("repository", "SaveRaw of %d bytes: %v", len(payload), err)
		return
	}
	if st.SHA256 != hexSum || st.Size != int64(len(payload)) {
		s.fail("repository", "SaveRaw reports sha256 %s size %d, want %s %d", st.SHA256, st.Size, hexSum, len(payload))
	}
	if _, err := r.SaveRaw(ctx, exp, 0, []byte("{}")); !errors.Is(err, sdk.ErrAlreadyExists) {
		s.fail("repository", "SaveRaw over an existing rank must fail with ErrAlreadyExists, got %v", err)
	}
	got, err := r.LoadRaw(ctx, exp, 0)
	if err != nil || !bytes.Equal(got, payload) {
		s.fail("repository", "LoadRaw did not return the exact bytes stored (%d bytes back, err %v)", len(got), err)
	}
	if _, err := r.MarkComplete(ctx, exp, 0, hex.EncodeToString(make([]byte, 32))); !errors.Is(err, sdk.ErrFailedPrecondition) {
		s.fail("repository", "MarkComplete with a wrong sha256 must fail with ErrFailedPrecondition, got %v", err)
	}
	mk, err := r.MarkComplete(ctx, exp, 0, hexSum)
	if err != nil {
		s.fail("repository", "MarkComplete: %v", err)
	} else if mk.Rank != 0 || mk.SHA256 != hexSum {
		s.fail("repository", "marker %+v does not name rank 0 and the stored sha256", mk)
	}
	entries, err := r.ListRaw(ctx, exp)
	if err != nil || len(entries) != 1 || entries[0].Marker == nil || entries[0].SHA256 != hexSum {
		s.fail("repository", "ListRaw after one save and mark: %+v, %v", entries, err)
	}
	if _, err := r.LoadRaw(ctx, exp, 7); !errors.Is(err, sdk.ErrNotFound) {
		s.fail("repository", "LoadRaw of a missing rank must fail with ErrNotFound, got %v", err)
	}
	for _, bad := range []string{"../x", "a/b", "", ".hidden"} {
		if _, err := r.SaveRaw(ctx, bad, 0, []byte("{}")); !errors.Is(err, sdk.ErrInvalidArgument) {
			s.fail("repository", "SaveRaw with experiment id %q must fail with ErrInvalidArgument, got %v", bad, err)
		}
	}
	if _, err := r.SaveRaw(ctx, exp, -1, []byte("{}")); !errors.Is(err, sdk.ErrInvalidArgument) {
		s.fail("repository", "SaveRaw with rank -1 must fail with ErrInvalidArgument, got %v", err)
	}

	// Concurrent raw saves of different ranks all land intact.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func(rank int) {
			defer wg.Done()
			_, errs[rank-1] = r.SaveRaw(ctx, exp, rank, []byte(fmt.Sprintf(`{"rank":%d}`, rank)))
		}(i + 1)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			s.fail("repository", "concurrent SaveRaw of rank %d: %v", i+1, err)
		} else if b, err := r.LoadRaw(ctx, exp, i+1); err != nil || string(b) != fmt.Sprintf(`{"rank":%d}`, i+1) {
			s.fail("repository", "rank %d saved concurrently reads back %q, %v", i+1, b, err)
		}
	}

	agg := []byte(`{"kind":"aggregated"}`)
	if _, err := r.SaveAggregated(ctx, exp, agg, false); err != nil {
		s.fail("repository", "SaveAggregated: %v", err)
	}
	if _, err := r.SaveAggregated(ctx, exp, []byte(`{}`), false); !errors.Is(err, sdk.ErrAlreadyExists) {
		s.fail("repository", "SaveAggregated without overwrite over an existing one must fail with ErrAlreadyExists, got %v", err)
	}
	agg2 := []byte(`{"kind":"aggregated","v":2}`)
	if _, err := r.SaveAggregated(ctx, exp, agg2, true); err != nil {
		s.fail("repository", "SaveAggregated with overwrite: %v", err)
	}
	if b, err := r.LoadAggregated(ctx, exp); err != nil || !bytes.Equal(b, agg2) {
		s.fail("repository", "LoadAggregated returned %q, %v; want %q", b, err, agg2)
	}
	man := []byte(`{"state":"running"}`)
	if _, err := r.SaveManifest(ctx, exp, man); err != nil {
		s.fail("repository", "SaveManifest: %v", err)
	}
	man2 := []byte(`{"state":"completed"}`)
	if _, err := r.SaveManifest(ctx, exp, man2); err != nil {
		s.fail("repository", "SaveManifest replacing the manifest: %v", err)
	}
	if b, err := r.LoadManifest(ctx, exp); err != nil || !bytes.Equal(b, man2) {
		s.fail("repository", "LoadManifest returned %q, %v; want %q", b, err, man2)
	}
	if _, err := r.LoadManifest(ctx, exp+"-missing"); !errors.Is(err, sdk.ErrNotFound) {
		s.fail("repository", "LoadManifest of a missing experiment must fail with ErrNotFound, got %v", err)
	}
	list, err := r.List(ctx)
	found := false
	for _, e := range list {
		if e.ID == exp {
			found = true
			if !e.Aggregated || !e.Manifest || len(e.RawRanks) != 5 || len(e.CompletedRanks) != 1 {
				s.fail("repository", "List entry %+v: want aggregated, manifest, 5 raw ranks, 1 completed", e)
			}
		}
	}
	if err != nil || !found {
		s.fail("repository", "List does not include %q (%v)", exp, err)
	}
}

func drain(ch chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}
