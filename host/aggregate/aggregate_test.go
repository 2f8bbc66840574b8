package aggregate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/results/resultstest"
	"github.com/lemctl/lemctl/sdk"
)

func run(t *testing.T, repo sdk.Repository, exp string, opts Options) *results.Aggregated {
	t.Helper()
	out, err := Run(context.Background(), repo, exp, opts)
	if err != nil {
		t.Fatalf("aggregate %s: %v", exp, err)
	}
	// What was stored is what was returned, and it decodes.
	stored, err := repo.LoadAggregated(context.Background(), exp)
	if err != nil || !bytes.Equal(stored, out.Data) {
		t.Fatalf("stored aggregate differs from the returned one: %v", err)
	}
	if _, err := results.DecodeAggregated(stored); err != nil {
		t.Fatal(err)
	}
	return out.Aggregated
}

func near(t *testing.T, what string, got *float64, want, tol float64) {
	t.Helper()
	if got == nil {
		t.Errorf("%s = null, want %g", what, want)
		return
	}
	if math.Abs(*got-want) > tol {
		t.Errorf("%s = %.6f, want %.6f ± %g", what, *got, want, tol)
	}
}

func domain(t *testing.T, a *results.Aggregated, id string) results.Domain {
	t.Helper()
	for _, d := range a.Energy.Domains {
		if d.ID == id {
			return d
		}
	}
	t.Fatalf("no domain %s in %+v", id, a.Energy.Domains)
	return results.Domain{}
}

// Rule: a domain several workers saw is measured once over the union of their windows.
func TestSharedDomainStitchedOverUnion(t *testing.T) {
	a := run(t, fixtures(t), "shared-package", Options{})
	// Windows [100 s, 120 s] and [105 s, 125 s]: union 25 s. The views are 20 s each; their sum
	// (2 × 20 s × 50 W = 2000 J) would be wrong.
	const sample = 50 * 0.3 // one sample of the coarser timeline at 50 W
	pkg := domain(t, a, "intel-rapl:0")
	near(t, "package energy", pkg.TotalJ, 50*25, sample)
	if !pkg.Stitched || len(pkg.Ranks) != 2 || pkg.Host == nil || *pkg.Host != hostA {
		t.Errorf("package domain = %+v, want stitched from ranks [0 1] on node-a", pkg)
	}
	near(t, "package static (idle 10 W × 25 s)", pkg.StaticJ, 250, 1e-9)
	near(t, "package dynamic", pkg.DynamicJ, 1000, sample)
	near(t, "dram energy", domain(t, a, "intel-rapl:0:2").TotalJ, 5*25, 1)
	// Nested domains are reported but never counted.
	near(t, "psys energy", domain(t, a, "intel-rapl:1").TotalJ, 80*25, 80*0.3)
	near(t, "energy.total_j (package + dram only)", a.Energy.TotalJ, 50*25+5*25, sample)
	if got := strings.Join(a.Energy.CountedDomainKinds, ","); got != "dram,package" {
		t.Errorf("counted kinds = %s", got)
	}
	near(t, "energy.static_j", a.Energy.StaticJ, 250+2*25, 1e-9)
	near(t, "j_per_output_token", a.Energy.JPerOutputToken, 1375.0/128, 0.2)
	// A shared domain's phases cannot be split between workers.
	if pkg.Phases.PrefillJ != nil || a.Energy.Phases.PrefillJ != nil {
		t.Errorf("phases of a shared domain must be null: %+v", pkg.Phases)
	}
}

// Rule: distinct domains (each worker its own GPU) add.
func TestOwnGPUsAdd(t *testing.T) {
	a := run(t, fixtures(t), "two-gpus", Options{})
	near(t, "GPU-aaa", domain(t, a, "GPU-aaa").TotalJ, 200*20, 1e-6)
	near(t, "GPU-bbb", domain(t, a, "GPU-bbb").TotalJ, 100*20, 1e-6)
	near(t, "energy.total_j", a.Energy.TotalJ, 6000, 1e-6)
	if domain(t, a, "GPU-aaa").Stitched {
		t.Error("a domain one worker saw is not stitched")
	}
	// Rule: peak memory is the max per device, summed over devices.
	if a.Memory.PeakBytes == nil || *a.Memory.PeakBytes != 3<<30 || len(a.Memory.Devices) != 2 {
		t.Errorf("memory = %+v, want 3 GiB over 2 devices", a.Memory)
	}
}

// Rules: sums of work; wall window min start → max end; throughput over the union window;
// latency percentiles recomputed from the concatenated samples; findings tagged with rank.
func TestWorkWindowLatencyFindings(t *testing.T) {
	a := run(t, fixtures(t), "shared-package", Options{})
	// 2 workers × 2 repeats × 4 requests × 8 tokens.
	if w := a.Workload; w.Requests != 16 || w.OutputTokens != 128 || w.InputTokens != 256 || w.BatchSize == nil || *w.BatchSize != 4 {
		t.Errorf("workload = %+v", w)
	}
	near(t, "flops.total", a.FLOPs.Total, 128e6, 1e-3)
	near(t, "flops.per_output_token", a.FLOPs.PerOutputToken, 1e6, 1e-6)
	if a.Window.StartUnixNS != 100*sec+wallOffset || a.Window.EndUnixNS != 125*sec+wallOffset || a.Window.DurationS != 25 {
		t.Errorf("window = %+v", a.Window)
	}
	near(t, "union_s", a.Window.UnionS, 25, 0)
	near(t, "output tokens/s", a.Throughput.OutputTokensPerS, 128.0/25, 1e-9)
	if len(a.Throughput.PerWorker) != 2 {
		t.Fatalf("per-worker throughput = %+v", a.Throughput.PerWorker)
	}
	near(t, "rank 1 output tokens/s", a.Throughput.PerWorker[1].OutputTokensPerS, 64.0/20, 1e-9)
	// TTFTs: rank 0 {50,100,150,200} ms, rank 1 {70,140,210,280} ms, each twice (2 repeats).
	// Concatenated, p50 interpolates between 140 and 150: 145. The mean of the workers' own
	// medians would be (125+175)/2 = 150.
	ttft := a.LatencyMS.TTFT
	if ttft.Count != 16 {
		t.Fatalf("ttft count = %d", ttft.Count)
	}
	near(t, "ttft p50", ttft.P50, 145, 1e-9)
	near(t, "ttft p99", ttft.P99, results.Percentile([]float64{50, 50, 70, 70, 100, 100, 140, 140, 150, 150, 200, 200, 210, 210, 280, 280}, 0.99), 1e-9)
	near(t, "ttft max", ttft.Max, 280, 1e-9)
	if a.LatencyMS.ITL.Count != 16*7 {
		t.Errorf("itl count = %d", a.LatencyMS.ITL.Count)
	}
	near(t, "itl p50", a.LatencyMS.ITL.P50, 20, 1e-9)
	var tagged bool
	for _, f := range a.Validity.Findings {
		if f.Code == "throttled" && f.Rank != nil && *f.Rank == 1 {
			tagged = true
		}
	}
	if !tagged || !a.Validity.Valid || a.Partial {
		t.Errorf("validity = %+v partial=%v; want the throttled warning tagged rank 1, valid, complete", a.Validity, a.Partial)
	}
	near(t, "overhead meter_cpu_s", a.Overhead.MeterCPUS, 1, 1e-12)
	near(t, "overhead share", a.Overhead.Share, 1.0/40, 1e-12)
	if len(a.Environment.Hosts) != 1 || len(a.Environment.Hosts[0].Ranks) != 2 {
		t.Errorf("environment = %+v", a.Environment)
	}
}

// Rule: repeats give per-repeat totals and mean, std, 95 % CI and CV.
func TestRepeats(t *testing.T) {
	a := run(t, fixtures(t), "shared-package", Options{})
	if len(a.Repeats) != 2 {
		t.Fatalf("repeats = %+v", a.Repeats)
	}
	for _, r := range a.Repeats {
		// Repeat windows [100,110]+[105,115] and [110,120]+[115,125]: unions of 15 s.
		if r.OutputTokens != 64 || r.Window.DurationS != 15 {
			t.Errorf("repeat %d = %+v", r.Index, r)
		}
		near(t, "repeat energy", r.EnergyJ, 55*15, 50*0.3)
	}
	st := a.RepeatStats["energy_j"]
	if st == nil || st.N != 2 || st.Std == nil || st.CI95Half == nil || st.CV == nil {
		t.Fatalf("energy_j stats = %+v", st)
	}
	near(t, "energy_j mean", st.Mean, 825, 50*0.3)
	want := results.TQuantile(0.975, 1) * *st.Std / math.Sqrt(2)
	near(t, "energy_j ci95 half width", st.CI95Half, want, 1e-9)
}

// Each completeness check fails with its reason: strict refuses, --no-strict writes a partial
// aggregate with the failure as an error finding.
func TestChecks(t *testing.T) {
	tests := []struct {
		exp, code string
		message   *regexp.Regexp
		ranks     string // ranks in the partial aggregate
	}{
		{"missing-marker", CodeMissingMarker, regexp.MustCompile(`rank 1 has a raw result \(mem:raw/missing-marker/process_1.json\) but no completion marker`), "[0 1]"},
		{"corrupted", CodeChecksumMismatch, regexp.MustCompile(`rank 1: the sha256 [0-9a-f]{64} of mem:raw/corrupted/process_1.json differs from its completion marker's`), "[0]"},
		{"missing-rank", CodeMissingRank, regexp.MustCompile(`rank 1 of 0\.\.2 has no raw result`), "[0 2]"},
		{"duplicate-slot", CodeDuplicateDeviceSlot, regexp.MustCompile(`ranks 0 and 1 both ran on host node-a device slot "cuda:0"`), "[0 1]"},
		{"not-concurrent", CodeWindowsNotConcurrent, regexp.MustCompile(`have 0\.000 s in common, less than 50 % of the shortest`), "[0 1]"},
		{"mixed-config", CodeMixedConfigHash, regexp.MustCompile(`rank 1 has config hash beef, rank 0 has c0ffee`), "[0 1]"},
	}
	for _, tc := range tests {
		t.Run(tc.exp, func(t *testing.T) {
			repo := fixtures(t)
			_, err := Run(context.Background(), repo, tc.exp, Options{})
			var ce *CheckError
			if !errors.As(err, &ce) {
				t.Fatalf("strict aggregation: %v, want a CheckError", err)
			}
			if len(ce.Failures) != 1 || ce.Failures[0].Code != tc.code || !tc.message.MatchString(ce.Failures[0].Message) {
				t.Fatalf("failures = %+v, want one %s matching %q", ce.Failures, tc.code, tc.message)
			}
			if !strings.Contains(err.Error(), tc.code+": ") {
				t.Errorf("error %q does not name the check", err)
			}
			if _, err := repo.LoadAggregated(context.Background(), tc.exp); !errors.Is(err, sdk.ErrNotFound) {
				t.Errorf("a refused aggregation stored something: %v", err)
			}

			a := run(t, repo, tc.exp, Options{NoStrict: true})
			if !a.Partial || len(a.PartialReasons) != 1 || !strings.HasPrefix(a.PartialReasons[0], tc.code+": ") {
				t.Errorf("partial = %v, reasons %q", a.Partial, a.PartialReasons)
			}
			if a.Validity.Valid {
				t.Error("a partial aggregate with an error finding must be invalid")
			}
			found := false
			for _, f := range a.Validity.Findings {
				found = found || f.Code == tc.code && f.Severity == results.SeverityError
			}
			if !found {
				t.Errorf("no %s error finding in %+v", tc.code, a.Validity.Findings)
			}
			if got := fmt.Sprint(a.Ranks); got != tc.ranks {
				t.Errorf("ranks = %s, want %s", got, tc.ranks)
			}
		})
	}
}

func TestAllowMixed(t *testing.T) {
	a := run(t, fixtures(t), "mixed-config", Options{AllowMixed: true})
	if a.Partial || !a.Validity.Valid {
		t.Fatalf("--allow-mixed: partial=%v valid=%v", a.Partial, a.Validity.Valid)
	}
	var warned bool
	for _, f := range a.Validity.Findings {
		warned = warned || f.Code == CodeMixedConfigHash && f.Severity == results.SeverityWarning && f.Rank != nil && *f.Rank == 1
	}
	if !warned {
		t.Errorf("no mixed_config_hash warning: %+v", a.Validity.Findings)
	}
}

var createdLine = regexp.MustCompile(`(?m)^  "created_unix_ns": \d+,?\n`)

// --force reproduces the aggregate byte for byte apart from its creation time.
func TestForceReproduces(t *testing.T) {
	for _, exp := range []string{"shared-package", "two-gpus"} {
		repo := fixtures(t)
		ctx := context.Background()
		first, err := Run(ctx, repo, exp, Options{Now: func() time.Time { return time.Unix(1, 0) }})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Run(ctx, repo, exp, Options{}); !errors.Is(err, sdk.ErrAlreadyExists) || !strings.Contains(err.Error(), "--force") {
			t.Fatalf("second aggregation without --force: %v", err)
		}
		second, err := Run(ctx, repo, exp, Options{Force: true, Now: func() time.Time { return time.Unix(2, 0) }})
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(first.Data, second.Data) {
			t.Fatal("the creation times differ, so the bytes must too")
		}
		a := createdLine.ReplaceAll(first.Data, nil)
		b := createdLine.ReplaceAll(second.Data, nil)
		if len(a) == len(first.Data) {
			t.Fatal("created_unix_ns line not found")
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s: --force did not reproduce the aggregate", exp)
		}
	}
}

// energy.total_j is null when no domain was measured; the unavailable domain keeps its reason.
func TestNothingMeasured(t *testing.T) {
	w := resultstest.Worker{Exp: "dark", WorldSize: 1, Host: hostA, Device: cpuDev(0), StartMonoNS: sec, EndMonoNS: 11 * sec,
		RequestsPerRepeat: 1, OutputTokens: 2, TTFTNS: 1e6, ITLNS: 1e6,
		Domains: []resultstest.DomainSpec{{ID: "intel-rapl:0", Kind: "package", Scope: "socket", Unavailable: "permission denied: energy_uj is root-only"}}}
	repo := resultstest.NewMemory()
	data := w.Bytes()
	ctx := context.Background()
	if _, err := repo.SaveRaw(ctx, "dark", 0, data); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.MarkComplete(ctx, "dark", 0, sha(data)); err != nil {
		t.Fatal(err)
	}
	a := run(t, repo, "dark", Options{})
	if a.Energy.TotalJ != nil || a.Energy.JPerOutputToken != nil || a.Energy.StaticJ != nil {
		t.Errorf("energy = %+v, want null figures", a.Energy)
	}
	d := domain(t, a, "intel-rapl:0")
	if d.Available || d.Reason != "permission denied: energy_uj is root-only" || d.TotalJ != nil {
		t.Errorf("domain = %+v", d)
	}
	b, _ := repo.LoadAggregated(ctx, "dark")
	if !bytes.Contains(b, []byte(`"total_j": null`)) {
		t.Error(`the aggregate must say "total_j": null`)
	}
	if a.FLOPs.Total != nil {
		t.Errorf("flops were not measured: %+v", a.FLOPs)
	}
}

func TestNoRawResults(t *testing.T) {
	_, err := Run(context.Background(), resultstest.NewMemory(), "nothing", Options{})
	if !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("aggregate of an unknown experiment: %v", err)
	}
}

// Uncertainty over ranks: each rank's GPU keeps its own budget, and the total's standard
// uncertainty is theirs in quadrature (separate devices: independent errors); J per token
// divides it by the exact token count. Across repeats the energy interval combines the
// between-repeat spread with the repeats' own uncertainties.
func TestUncertaintyAcrossRanksAndRepeats(t *testing.T) {
	a := run(t, fixtures(t), "two-gpus", Options{})
	ua, ub := domain(t, a, "GPU-aaa").UncertaintyJ, domain(t, a, "GPU-bbb").UncertaintyJ
	if ua == nil || ub == nil || *ua <= 0 || *ub <= 0 {
		t.Fatalf("domain uncertainties %v %v, want positive", ua, ub)
	}
	near(t, "energy.uncertainty_j", a.Energy.UncertaintyJ, math.Hypot(*ua, *ub), 1e-12)
	near(t, "j_per_output_token_uncertainty", a.Energy.JPerOutputTokenUncertainty, math.Hypot(*ua, *ub)/float64(a.Workload.OutputTokens), 1e-12)

	s := run(t, fixtures(t), "shared-package", Options{})
	st := s.RepeatStats["energy_j"]
	if st == nil || st.WithinU == nil || st.CombinedU == nil || st.Combined95Low == nil {
		t.Fatalf("energy_j stats = %+v, want the within-window uncertainty combined", st)
	}
	var w float64
	for _, r := range s.Repeats {
		if r.EnergyUncertaintyJ == nil {
			t.Fatalf("repeat %d has no energy uncertainty", r.Index)
		}
		w += *r.EnergyUncertaintyJ * *r.EnergyUncertaintyJ / float64(len(s.Repeats))
	}
	near(t, "within_u", st.WithinU, math.Sqrt(w), 1e-12)
	near(t, "combined_u", st.CombinedU, math.Sqrt(*st.Std**st.Std/2+w), 1e-12)
	near(t, "combined95_low", st.Combined95Low, *st.Mean-math.Hypot(*st.CI95Half, 2*math.Sqrt(w)), 1e-9)
}
