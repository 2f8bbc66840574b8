package aggregate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lemctl/lemctl/host/config"
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/sdk"
)

// Codes of the completeness checks. Each failed check becomes an error finding with its code.
const (
	CodeMissingMarker        = "missing_marker"
	CodeChecksumMismatch     = "checksum_mismatch"
	CodeRawInvalid           = "raw_invalid"
	CodeMissingRank          = "missing_rank"
	CodeUnexpectedRank       = "unexpected_rank"
	CodeWorldSizeMismatch    = "world_size_mismatch"
	CodeDuplicateDeviceSlot  = "duplicate_device_slot"
	CodeWindowsNotConcurrent = "windows_not_concurrent"
	CodeMixedConfigHash      = "mixed_config_hash"
	CodeMixedEngine          = "mixed_engine"
	CodeMixedModel           = "mixed_model"
	// CodeMarkerInvalid: a rank's completion marker exists but cannot be used (it does not
	// parse, names another rank, or has no sha256); the rank is left out.
	CodeMarkerInvalid = "marker_invalid"

	// Findings the aggregation adds that are not checks.
	CodeEnergyNotStitched = "energy_not_stitched"
	// CodeClockCompared (info): the windows of several hosts were compared on wall time, within
	// the stated clock tolerance; CodeClockUnsynchronized (warning): a host's clock was not
	// known to be synchronized, so the tolerance assumes UnsyncedClockTolerance for it;
	// CodeWindowsConcurrencyUncertain (warning): the windows meet validity.min_window_overlap
	// only within the clock tolerance.
	CodeClockCompared               = "clock_compared"
	CodeClockUnsynchronized         = "clock_unsynchronized"
	CodeWindowsConcurrencyUncertain = "windows_concurrency_uncertain"
	CodeDynamicNegative             = "dynamic_negative"
	CodeRunNotCompleted             = "run_not_completed"
	CodeManifestInvalid             = "manifest_invalid"
	// CodeRankInvalid: a raw result says valid: false without an error finding to show for it.
	CodeRankInvalid = "rank_invalid"
	// CodeStrayFile (warning): a name among the raw results that looks like a raw result or a
	// marker without being one the repository reads (process_00.json, a leftover temp file, a
	// marker without a raw result). Nothing reads it; the finding says it is there.
	CodeStrayFile = "stray_file"
)

// Options control an aggregation.
type Options struct {
	// NoStrict aggregates what is there when completeness checks fail, marking the aggregate
	// partial; by default any failed check is an error.
	NoStrict bool
	// AllowMixed turns a mixed config hash, engine or model into a warning.
	AllowMixed bool
	// Force replaces an existing aggregate.
	Force bool
	// LemctlVersion and LemctlCommit are recorded in the aggregate.
	LemctlVersion, LemctlCommit string
	// Now gives the creation time; time.Now when nil.
	Now func() time.Time
	// ShownState gives the state to report of a stored manifest (results.Manifest.ShownState:
	// "abandoned" for a run still "running" whose lemctl is gone); the stored state when nil.
	ShownState func(*results.Manifest) string
}

// CheckError is a strict aggregation's refusal: the completeness checks that failed.
type CheckError struct {
	Experiment string
	Failures   []results.Finding
	// Usable is the number of ranks a --no-strict aggregation would aggregate: 0 when no rank
	// left a usable raw result, and then no partial aggregate can be written either.
	Usable int
}

func (e *CheckError) Error() string {
	var b strings.Builder
	hint := " (--no-strict writes a partial aggregate)"
	if e.Usable == 0 {
		hint = " (no rank left a usable raw result: there is nothing to aggregate, even with --no-strict)"
	}
	fmt.Fprintf(&b, "aggregate %s: %d completeness check(s) failed%s:", e.Experiment, len(e.Failures), hint)
	for _, f := range e.Failures {
		b.WriteString("\n  " + f.Code + ": " + f.Message)
	}
	return b.String()
}

// Outcome is what Run did.
type Outcome struct {
	Aggregated *results.Aggregated
	Data       []byte
	Stored     *sdk.Stored
}

// Run aggregates an experiment from the raw results in repo and stores the aggregate. An
// existing aggregate is an sdk.ErrAlreadyExists error unless opts.Force. A strict aggregation
// whose checks fail returns a *CheckError and stores nothing.
func Run(ctx context.Context, repo sdk.Repository, exp string, opts Options) (*Outcome, error) {
	if !opts.Force {
		if _, err := repo.LoadAggregated(ctx, exp); err == nil {
			return nil, fmt.Errorf("aggregate %s: %w: an aggregate exists (--force replaces it)", exp, sdk.ErrAlreadyExists)
		} else if !errors.Is(err, sdk.ErrNotFound) {
			return nil, fmt.Errorf("aggregate %s: %w", exp, err)
		}
	}
	decoded, manifest, err := loadDecoded(ctx, repo, exp)
	if err != nil {
		return nil, err
	}
	strays, err := strayFindings(ctx, repo, exp)
	if err != nil {
		return nil, err
	}
	agg, err := assemble(exp, decoded, manifest, opts, strays...)
	if err != nil {
		return nil, err
	}
	data, err := results.Encode(agg)
	if err != nil {
		return nil, err
	}
	st, err := repo.SaveAggregated(ctx, exp, data, opts.Force)
	if err != nil {
		return nil, fmt.Errorf("aggregate %s: %w", exp, err)
	}
	return &Outcome{Aggregated: agg, Data: data, Stored: st}, nil
}

// decodedInput is one raw result after hashing and decoding; its bytes are no longer held.
type decodedInput struct {
	entry sdk.RawEntry
	sum   string
	raw   *results.Raw
	err   error
}

func decodeOne(e sdk.RawEntry, data []byte) decodedInput {
	s := sha256.Sum256(data)
	d := decodedInput{entry: e, sum: hex.EncodeToString(s[:])}
	d.raw, d.err = results.DecodeRaw(data)
	return d
}

// parallel runs fn(0..n−1) on GOMAXPROCS goroutines and returns the first error.
func parallel(n int, fn func(i int) error) error {
	var wg sync.WaitGroup
	next := make(chan int)
	errs := make([]error, n)
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			for i := range next {
				errs[i] = fn(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
}

// loadDecoded lists, loads, hashes and decodes the raw results GOMAXPROCS at a time, so that at
// most that many raw files' bytes are held at once, and loads the manifest.
func loadDecoded(ctx context.Context, repo sdk.Repository, exp string) ([]decodedInput, []byte, error) {
	entries, err := repo.ListRaw(ctx, exp)
	if err != nil {
		return nil, nil, fmt.Errorf("aggregate %s: list raw results: %w", exp, err)
	}
	if len(entries) == 0 {
		return nil, nil, fmt.Errorf("aggregate %s: %w: no raw results", exp, sdk.ErrNotFound)
	}
	out := make([]decodedInput, len(entries))
	err = parallel(len(entries), func(i int) error {
		data, err := repo.LoadRaw(ctx, exp, entries[i].Rank)
		if err != nil {
			return fmt.Errorf("aggregate %s: load rank %d: %w", exp, entries[i].Rank, err)
		}
		out[i] = decodeOne(entries[i], data)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	manifest, err := repo.LoadManifest(ctx, exp)
	if err != nil && !errors.Is(err, sdk.ErrNotFound) {
		return nil, nil, fmt.Errorf("aggregate %s: load manifest: %w", exp, err)
	}
	return out, manifest, nil
}

// strayFindings lists, when the repository can, the names among exp's raw results that look like
// raw results or markers without being read, as stray_file warnings. A repository plugin built
// before strays were listed answers ErrUnimplemented: then there are none to report.
func strayFindings(ctx context.Context, repo sdk.Repository, exp string) ([]results.Finding, error) {
	sl, ok := repo.(sdk.StrayLister)
	if !ok {
		return nil, nil
	}
	strays, err := sl.ListStrays(ctx, exp)
	switch {
	case errors.Is(err, sdk.ErrUnimplemented):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("aggregate %s: list stray files: %w", exp, err)
	}
	var out []results.Finding
	for _, st := range strays {
		out = append(out, results.Finding{Code: CodeStrayFile, Severity: results.SeverityWarning,
			Message: fmt.Sprintf("%s: %s", st.Path, st.Problem),
			Advice:  "nothing reads it; remove it, or if it holds a rank's result, find out why it is not under its canonical name"})
	}
	return out, nil
}

// fileOf names a rank's raw result in messages: its path when the repository gives one.
func fileOf(e sdk.RawEntry) string {
	if e.Path != "" {
		return e.Path
	}
	return fmt.Sprintf("the raw result of rank %d", e.Rank)
}

// worker is one decoded raw result.
type worker struct {
	rank int
	sha  string
	raw  *results.Raw
}

// checks collects failed completeness checks and other findings.
type checks struct {
	failures []results.Finding // become errors (strict: refusal)
	findings []results.Finding // warnings and infos the aggregation adds
}

func (c *checks) fail(code string, rank *int, format string, args ...any) {
	c.failures = append(c.failures, results.Finding{Code: code, Severity: results.SeverityError, Message: fmt.Sprintf(format, args...), Rank: rank})
}

func (c *checks) warn(code string, rank *int, format string, args ...any) {
	c.findings = append(c.findings, results.Finding{Code: code, Severity: results.SeverityWarning, Message: fmt.Sprintf(format, args...), Rank: rank})
}

// assemble checks and aggregates decoded inputs; extra are findings found before (stray files).
// Every problem of one rank's files (its marker, its raw result) leaves that rank out with a
// finding naming the file; the other ranks are aggregated under --no-strict.
func assemble(exp string, inputs []decodedInput, manifest []byte, opts Options, extra ...results.Finding) (*results.Aggregated, error) {
	if len(inputs) == 0 {
		return nil, fmt.Errorf("aggregate %s: %w: no raw results", exp, sdk.ErrNotFound)
	}
	c := checks{findings: extra}
	sort.Slice(inputs, func(i, j int) bool { return inputs[i].entry.Rank < inputs[j].entry.Rank })
	var ws []*worker
	for _, in := range inputs {
		rank := in.entry.Rank
		rp := results.IntPtr(rank)
		file := fileOf(in.entry)
		switch mk := in.entry.Marker; {
		case in.entry.MarkerProblem != "":
			c.fail(CodeMarkerInvalid, rp, "rank %d: %s; its raw result %s is unconfirmed; rank %d left out", rank, in.entry.MarkerProblem, file, rank)
			continue
		case mk == nil:
			c.fail(CodeMissingMarker, rp, "rank %d has a raw result (%s) but no completion marker (the worker did not confirm it)", rank, file)
		case mk.Rank != rank:
			c.fail(CodeMarkerInvalid, rp, "rank %d: the completion marker of %s says rank %d; rank %d left out", rank, file, mk.Rank, rank)
			continue
		case !strings.EqualFold(mk.SHA256, in.sum):
			c.fail(CodeChecksumMismatch, rp, "rank %d: the sha256 %s of %s differs from its completion marker's %s (the file changed after it was written); rank %d left out", rank, in.sum, file, mk.SHA256, rank)
			continue
		}
		if in.err != nil {
			c.fail(CodeRawInvalid, rp, "rank %d: %s: %v; rank %d left out", rank, file, in.err, rank)
			continue
		}
		raw := in.raw
		if raw.ExperimentID != exp || raw.Rank != rank {
			c.fail(CodeRawInvalid, rp, "rank %d: %s says experiment %q rank %d; rank %d left out", rank, file, raw.ExperimentID, raw.Rank, rank)
			continue
		}
		ws = append(ws, &worker{rank: rank, sha: in.sum, raw: raw})
	}
	if len(ws) == 0 {
		return nil, &CheckError{Experiment: exp, Failures: append(c.failures, results.Finding{Code: CodeRawInvalid,
			Severity: results.SeverityError, Message: "no usable raw result: nothing to aggregate"})}
	}

	worldSize := checkWorld(&c, ws, manifest, opts.ShownState)
	present := map[int]bool{}
	for _, in := range inputs {
		present[in.entry.Rank] = true
	}
	ws = checkRanks(&c, ws, worldSize, present)
	checkSlots(&c, ws)
	checkMixed(&c, ws, opts.AllowMixed)
	checkWindows(&c, ws)

	if len(c.failures) > 0 && !opts.NoStrict {
		return nil, &CheckError{Experiment: exp, Failures: c.failures, Usable: len(ws)}
	}
	if len(ws) == 0 {
		return nil, &CheckError{Experiment: exp, Failures: append(c.failures, results.Finding{Code: CodeUnexpectedRank,
			Severity: results.SeverityError, Message: "no raw result within the world size: nothing to aggregate"})}
	}
	agg := build(exp, ws, worldSize, &c, opts)
	return agg, nil
}

// checkWorld returns the world size: the manifest's when it has one, else the largest of the raw
// results' (which must agree).
func checkWorld(c *checks, ws []*worker, manifest []byte, shown func(*results.Manifest) string) int {
	sizes := map[int][]int{}
	n := 0
	for _, w := range ws {
		sizes[w.raw.WorldSize] = append(sizes[w.raw.WorldSize], w.rank)
		n = max(n, w.raw.WorldSize)
	}
	if manifest != nil {
		m, err := results.DecodeManifest(manifest)
		switch {
		case err != nil:
			c.warn(CodeManifestInvalid, nil, "run manifest ignored: %v", err)
		default:
			if m.WorldSize > 0 {
				n = m.WorldSize
			}
			state := m.State
			if shown != nil {
				state = shown(m)
			}
			switch {
			case state == results.StateAbandoned:
				c.warn(CodeRunNotCompleted, nil, "the run manifest says the run is %s, but its lemctl (pid %d) is gone: the run was abandoned", m.State, m.LemctlPID)
			case state != results.StateCompleted:
				c.warn(CodeRunNotCompleted, nil, "the run manifest says the run is %s", state)
			}
			for _, f := range m.Findings {
				f.Rank = nil
				c.findings = append(c.findings, f)
			}
		}
	}
	if len(sizes) > 1 {
		var parts []string
		for _, s := range sortedKeys(sizes) {
			parts = append(parts, fmt.Sprintf("world_size %d in ranks %v", s, sizes[s]))
		}
		c.fail(CodeWorldSizeMismatch, nil, "the raw results disagree on the world size: %s; using %d", strings.Join(parts, ", "), n)
	}
	return n
}

// checkRanks requires ranks 0..n−1 exactly and drops ranks ≥ n. A rank present but left out by
// an earlier check (its own failure says why) is not reported again.
func checkRanks(c *checks, ws []*worker, n int, present map[int]bool) []*worker {
	var kept []*worker
	for _, w := range ws {
		if w.rank >= n {
			c.fail(CodeUnexpectedRank, results.IntPtr(w.rank), "rank %d is outside 0..%d (world size %d); left out", w.rank, n-1, n)
			continue
		}
		kept = append(kept, w)
	}
	for r := range n {
		if !present[r] {
			c.fail(CodeMissingRank, results.IntPtr(r), "rank %d of 0..%d has no raw result", r, n-1)
		}
	}
	return kept
}

// checkSlots requires every (host, device, slot) to be unique, and every accelerator to be used
// by one worker only.
func checkSlots(c *checks, ws []*worker) {
	slots := map[string]int{}
	devices := map[string]int{}
	for _, w := range ws {
		h, d := w.raw.Host, w.raw.Device
		key := fmt.Sprintf("%s|%s|%d|%s|%s", h.Key(), d.Kind, d.Index, d.UUID, d.Slot)
		if prev, dup := slots[key]; dup {
			c.fail(CodeDuplicateDeviceSlot, results.IntPtr(w.rank), "ranks %d and %d both ran on host %s device slot %q", prev, w.rank, h.Hostname, d.Slot)
			continue
		}
		slots[key] = w.rank
		if d.Kind != "" && d.Kind != "cpu" {
			dk := h.Key() + "|" + deviceID(d)
			if prev, dup := devices[dk]; dup {
				c.fail(CodeDuplicateDeviceSlot, results.IntPtr(w.rank), "ranks %d and %d both ran on host %s device %s", prev, w.rank, h.Hostname, deviceID(d))
				continue
			}
			devices[dk] = w.rank
		}
	}
}

func deviceID(d results.Device) string {
	if d.UUID != "" {
		return d.Kind + ":" + d.UUID
	}
	return d.Kind + ":" + strconv.Itoa(d.Index)
}

// checkMixed requires the same config hash, engine and model everywhere.
func checkMixed(c *checks, ws []*worker, allow bool) {
	first := ws[0].raw
	report := func(code, what, a, b string, rank int) {
		msg := fmt.Sprintf("rank %d has %s %s, rank %d has %s", rank, what, b, ws[0].rank, a)
		if allow {
			c.warn(code, results.IntPtr(rank), "%s (allowed by --allow-mixed)", msg)
		} else {
			c.fail(code, results.IntPtr(rank), "%s (--allow-mixed accepts this)", msg)
		}
	}
	for _, w := range ws[1:] {
		r := w.raw
		if r.ConfigHash != first.ConfigHash {
			report(CodeMixedConfigHash, "config hash", first.ConfigHash, r.ConfigHash, w.rank)
		}
		if engineString(r.Engine) != engineString(first.Engine) {
			report(CodeMixedEngine, "engine", engineString(first.Engine), engineString(r.Engine), w.rank)
		}
		if r.Model.Ref != first.Model.Ref || r.Model.SHA256 != first.Model.SHA256 {
			report(CodeMixedModel, "model", first.Model.Ref+"@"+first.Model.SHA256, r.Model.Ref+"@"+r.Model.SHA256, w.rank)
		}
	}
}

func engineString(e results.Engine) string {
	s := fmt.Sprintf("%s %s (%s)", e.Plugin, e.Version, e.ExecutionProvider)
	if e.Endpoint != "" {
		s += " at " + e.Endpoint
	}
	return s
}

// singleHost reports whether every worker ran on one host boot, so that monotonic times compare.
func singleHost(ws []*worker) bool {
	for _, w := range ws[1:] {
		if w.raw.Host != ws[0].raw.Host {
			return false
		}
	}
	return true
}

// windowOf returns a worker's window on the common clock: monotonic on one host, wall time
// across hosts.
func windowOf(s results.Span, mono bool) interval {
	if mono {
		return interval{s.StartMonoNS, s.EndMonoNS}
	}
	return interval{s.StartUnixNS, s.EndUnixNS}
}

// minOverlap is the run's validity.min_window_overlap, read from the config the raw results
// record (the schema's default where one records none). Configs differ only with --allow-mixed;
// the largest value, the strictest, applies then.
func minOverlap(ws []*worker) float64 {
	out := 0.0
	for _, w := range ws {
		v := struct {
			Validity config.Validity `json:"validity"`
		}{config.DefaultValidity()}
		if len(w.raw.Config) > 0 {
			if err := json.Unmarshal(w.raw.Config, &v); err != nil {
				v.Validity = config.DefaultValidity()
			}
		}
		out = max(out, v.Validity.MinWindowOverlap)
	}
	return out
}

// checkWindows requires all windows to share an intersection of at least minOverlap of the
// shortest. On one host boot the windows compare on its monotonic clock; across hosts on wall
// time (each worker's monotonic times plus its recorded offset), within the clock tolerance of
// clockTolerance, which the findings state.
func checkWindows(c *checks, ws []*worker) {
	if len(ws) < 2 {
		return
	}
	mono := singleHost(ws)
	var tol int64
	var tolWhy string
	if !mono {
		tol, tolWhy = clockTolerance(c, ws)
		c.findings = append(c.findings, results.Finding{Code: CodeClockCompared, Severity: results.SeverityInfo,
			Message: fmt.Sprintf("the windows of %d hosts were compared on wall time with a clock tolerance of ±%.3f s (%s)", hostCount(ws), float64(tol)/1e9, tolWhy)})
	}
	latestStart, earliestEnd := int64(math.MinInt64), int64(math.MaxInt64)
	shortest := int64(math.MaxInt64)
	var shortRank int
	for _, w := range ws {
		iv := wallWindow(w.raw, mono)
		latestStart = max(latestStart, iv.start)
		earliestEnd = min(earliestEnd, iv.end)
		if d := iv.end - iv.start; d < shortest {
			shortest, shortRank = d, w.rank
		}
	}
	common := max(0, earliestEnd-latestStart)
	share := minOverlap(ws)
	need := share * float64(shortest)
	switch {
	case float64(common) >= need:
	case mono:
		c.fail(CodeWindowsNotConcurrent, nil, "the workers' measured windows have %.3f s in common, less than %g %% of the shortest (rank %d, %.3f s; validity.min_window_overlap = %g)",
			float64(common)/1e9, share*100, shortRank, float64(shortest)/1e9, share)
	case float64(common+tol) < need:
		c.fail(CodeWindowsNotConcurrent, nil, "the workers' measured windows have %.3f s in common on wall time, less than %g %% of the shortest (rank %d, %.3f s; validity.min_window_overlap = %g) even with the clock tolerance of ±%.3f s between hosts",
			float64(common)/1e9, share*100, shortRank, float64(shortest)/1e9, share, float64(tol)/1e9)
	default:
		c.warn(CodeWindowsConcurrencyUncertain, nil, "the workers' measured windows have %.3f s in common on wall time, less than %g %% of the shortest (rank %d, %.3f s; validity.min_window_overlap = %g), but within the clock tolerance of ±%.3f s between hosts: concurrency cannot be told apart",
			float64(common)/1e9, share*100, shortRank, float64(shortest)/1e9, share, float64(tol)/1e9)
	}
}

// UnsyncedClockTolerance is the error assumed for a host whose clock the kernel does not report
// synchronized (or whose raw result records no clock state): 1 s.
const UnsyncedClockTolerance = int64(time.Second)

// wallWindow is a worker's window on the common clock: monotonic on one host; across hosts,
// its monotonic bounds plus the offsets it recorded at the window's start and end (the wall
// times it recorded, when it recorded no offsets).
func wallWindow(r *results.Raw, mono bool) interval {
	if mono || r.Clock == nil {
		return windowOf(r.Window.Span, mono)
	}
	return interval{r.Window.StartMonoNS + r.Clock.MonoToUnixNS, r.Window.EndMonoNS + r.Clock.MonoToUnixEndNS}
}

// clockTolerance bounds how far two hosts' wall clocks may disagree: the sum of the two largest
// per-host errors (a synchronized host's kernel maximum error, else UnsyncedClockTolerance)
// plus the largest change of a worker's offset over its window (a clock slewed or stepped
// meanwhile). It warns once per host whose clock is not known to be synchronized.
func clockTolerance(c *checks, ws []*worker) (int64, string) {
	perHost := map[string]int64{}
	var order []string
	var slew int64
	var unsynced []string
	for _, w := range ws {
		key := w.raw.Host.Key()
		e := UnsyncedClockTolerance
		why := ""
		switch ck := w.raw.Clock; {
		case ck == nil:
			why = "its raw result records no clock state"
		case ck.Sync.Synchronized == nil:
			why = "its clock state could not be read: " + ck.Sync.Reason
		case !*ck.Sync.Synchronized:
			why = "the kernel reports its clock unsynchronized"
		case ck.Sync.MaxErrorUS != nil:
			e = *ck.Sync.MaxErrorUS * int64(time.Microsecond)
		}
		if w.raw.Clock != nil {
			d := w.raw.Clock.MonoToUnixEndNS - w.raw.Clock.MonoToUnixNS
			slew = max(slew, d, -d)
		}
		old, seen := perHost[key]
		if !seen {
			order = append(order, key)
		}
		perHost[key] = max(old, e)
		if why != "" && !slices.Contains(unsynced, key) {
			unsynced = append(unsynced, key)
			c.warn(CodeClockUnsynchronized, results.IntPtr(w.rank), "host %s: %s; its windows are compared with other hosts' assuming a clock error of %.3f s",
				w.raw.Host.Hostname, why, float64(UnsyncedClockTolerance)/1e9)
		}
	}
	errs := make([]int64, 0, len(order))
	for _, k := range order {
		errs = append(errs, perHost[k])
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i] > errs[j] })
	tol := errs[0] + slew
	if len(errs) > 1 {
		tol += errs[1]
	}
	return tol, fmt.Sprintf("the two largest host clock errors %.3f s + %.3f s, plus %.3f s of offset change within a window", float64(errs[0])/1e9, float64(errsAt(errs, 1))/1e9, float64(slew)/1e9)
}

func errsAt(errs []int64, i int) int64 {
	if i < len(errs) {
		return errs[i]
	}
	return 0
}

func hostCount(ws []*worker) int {
	seen := map[string]bool{}
	for _, w := range ws {
		seen[w.raw.Host.Key()] = true
	}
	return len(seen)
}

func sortedKeys[V any](m map[int]V) []int {
	ks := make([]int, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Ints(ks)
	return ks
}
