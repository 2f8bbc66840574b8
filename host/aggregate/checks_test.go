package aggregate

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/results/resultstest"
)

// save stores each worker's raw result with a valid marker (or raw bytes as given).
func save(t *testing.T, exp string, raws map[int][]byte) *resultstest.Memory {
	t.Helper()
	repo := resultstest.NewMemory()
	ctx := context.Background()
	for rank, data := range raws {
		if _, err := repo.SaveRaw(ctx, exp, rank, data); err != nil {
			t.Fatal(err)
		}
		if _, err := repo.MarkComplete(ctx, exp, rank, sha(data)); err != nil {
			t.Fatal(err)
		}
	}
	return repo
}

func TestMoreChecks(t *testing.T) {
	pair := func(mut func(w []resultstest.Worker)) map[int][]byte {
		ws := gpuPair("x")
		mut(ws)
		out := map[int][]byte{}
		for _, w := range ws {
			out[w.Rank] = w.Bytes()
		}
		return out
	}
	tests := []struct {
		name     string
		raws     map[int][]byte
		manifest *results.Manifest
		code     string
		msg      string
	}{
		{"mixed engine", pair(func(w []resultstest.Worker) { w[1].EngineVer = "0.2.0" }), nil,
			CodeMixedEngine, "rank 1 has engine onnx 0.2.0 (cpu), rank 0 has onnx 0.1.0 (cpu)"},
		{"mixed model", pair(func(w []resultstest.Worker) { w[1].ModelRef = "models/gpt2" }), nil,
			CodeMixedModel, "rank 1 has model models/gpt2@feed"},
		{"world size disagreement", pair(func(w []resultstest.Worker) { w[1].WorldSize = 3 }), nil,
			CodeWorldSizeMismatch, "world_size 2 in ranks [0], world_size 3 in ranks [1]"},
		{"rank beyond the world size", pair(func(w []resultstest.Worker) { w[1].Rank = 5 }), &results.Manifest{WorldSize: 1, State: results.StateCompleted},
			CodeUnexpectedRank, "rank 5 is outside 0..0 (world size 1)"},
		{"unparsable raw result", map[int][]byte{0: gpuPair("x")[0].Bytes(), 1: []byte("{not json")}, nil,
			CodeRawInvalid, "rank 1: mem:raw/x/process_1.json: decode raw result"},
		{"raw result of another rank", map[int][]byte{0: gpuPair("x")[1].Bytes(), 1: gpuPair("x")[0].Bytes()}, nil,
			CodeRawInvalid, "rank 0: mem:raw/x/process_0.json says experiment \"x\" rank 1"},
		{"manifest world size", pair(func(w []resultstest.Worker) {}), &results.Manifest{WorldSize: 4, State: results.StateFailed},
			CodeMissingRank, "rank 2 of 0..3 has no raw result"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			repo := save(t, "x", tc.raws)
			if tc.manifest != nil {
				m := *tc.manifest
				m.SchemaVersion, m.Kind, m.ExperimentID = results.SchemaVersion, results.KindManifest, "x"
				b, _ := results.Encode(m)
				if _, err := repo.SaveManifest(context.Background(), "x", b); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Run(context.Background(), repo, "x", Options{})
			var ce *CheckError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a CheckError", err)
			}
			found := false
			for _, f := range ce.Failures {
				found = found || f.Code == tc.code && strings.Contains(f.Message, tc.msg)
			}
			if !found {
				t.Errorf("failures %+v lack %s %q", ce.Failures, tc.code, tc.msg)
			}
		})
	}
}

func TestManifestNotCompletedWarns(t *testing.T) {
	ws := gpuPair("x")
	repo := save(t, "x", map[int][]byte{0: ws[0].Bytes(), 1: ws[1].Bytes()})
	b, _ := results.Encode(results.Manifest{SchemaVersion: "1", Kind: results.KindManifest, ExperimentID: "x", State: results.StateInterrupted, WorldSize: 2})
	repo.SaveManifest(context.Background(), "x", b)
	a := run(t, repo, "x", Options{})
	var warned bool
	for _, f := range a.Validity.Findings {
		warned = warned || f.Code == CodeRunNotCompleted && f.Severity == results.SeverityWarning
	}
	if !warned || a.Partial || !a.Validity.Valid {
		t.Errorf("findings = %+v", a.Validity.Findings)
	}
}

// Warnings are the union over the workers, each tagged with its rank.
func TestWarningsTagged(t *testing.T) {
	ws := gpuPair("x")
	raws := map[int][]byte{}
	for _, w := range ws {
		r := w.Raw()
		r.Warnings = []results.Warning{{Message: "from " + string(rune('0'+w.Rank))}}
		b, _ := results.EncodeRaw(r)
		raws[w.Rank] = b
	}
	a := run(t, save(t, "x", raws), "x", Options{})
	if len(a.Warnings) != 2 || a.Warnings[1].Message != "from 1" || a.Warnings[1].Rank == nil || *a.Warnings[1].Rank != 1 {
		t.Errorf("warnings = %+v", a.Warnings)
	}
}

// A shared domain that cannot be stitched (a worker without a usable timeline) gets the largest
// single view, a lower bound, and a warning — never the sum of the views.
func TestSharedDomainWithoutTimeline(t *testing.T) {
	ws := gpuPair("x")
	raws := map[int][]byte{}
	for _, w := range ws {
		w.Domains = []resultstest.DomainSpec{{ID: "intel-rapl:0", Kind: "package", Scope: "socket", PowerW: 50, NoTimeline: w.Rank == 1}}
		raws[w.Rank] = w.Bytes()
	}
	// Rank 0's timeline goes backwards in energy: unusable too.
	r0, _ := results.DecodeRaw(raws[0])
	tl := r0.Energy.Domains[0].Timeline
	tl[3].EnergyUJ = 0
	raws[0], _ = results.EncodeRaw(r0)
	a := run(t, save(t, "x", raws), "x", Options{})
	near(t, "package energy", domain(t, a, "intel-rapl:0").TotalJ, 50*20, 1e-6)
	var warned bool
	for _, f := range a.Validity.Findings {
		warned = warned || f.Code == CodeEnergyNotStitched
	}
	if !warned {
		t.Errorf("no energy_not_stitched warning: %+v", a.Validity.Findings)
	}
}

func TestRepeatEnergyNeedsTimeline(t *testing.T) {
	ws := gpuPair("x")
	raws := map[int][]byte{}
	for _, w := range ws {
		w.Repeats = 2
		if w.Rank == 1 {
			w.Domains[0].NoTimeline = true
		}
		raws[w.Rank] = w.Bytes()
	}
	a := run(t, save(t, "x", raws), "x", Options{})
	near(t, "total", a.Energy.TotalJ, 6000, 1e-6)
	for _, r := range a.Repeats {
		if r.EnergyJ != nil {
			t.Errorf("repeat %d energy = %g, want null (GPU-bbb has no timeline to split by repeat)", r.Index, *r.EnergyJ)
		}
	}
	if _, ok := a.RepeatStats["energy_j"]; ok {
		t.Error("energy_j stats without per-repeat energy")
	}
}

// TestMinWindowOverlapFromConfig: windows_not_concurrent uses the validity.min_window_overlap the
// raw results record. Windows of 20 s sharing 10 s (50 %) pass at 0.4 and the default 0.5, fail
// at 0.9; windows with nothing in common pass only at 0 (no check).
func TestMinWindowOverlapFromConfig(t *testing.T) {
	cases := []struct {
		name       string
		overlap    string // the recorded config's validity table; "" records none
		startOfOne int64  // rank 1's window start (rank 0: 100–120 s)
		fail       string // the failure message's share; "" for none
	}{
		{"half in common, 0.4", `{"min_window_overlap":0.4}`, 110, ""},
		{"half in common, default", "", 110, ""},
		{"half in common, 0.9", `{"min_window_overlap":0.9}`, 110, "less than 90 % of the shortest (rank 0, 20.000 s; validity.min_window_overlap = 0.9)"},
		{"apart, default", "", 130, "less than 50 % of the shortest"},
		{"apart, 0", `{"min_window_overlap":0}`, 130, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raws := map[int][]byte{}
			for _, w := range gpuPair("overlap") {
				if w.Rank == 1 {
					w.StartMonoNS, w.EndMonoNS = tc.startOfOne*sec, (tc.startOfOne+20)*sec
				}
				raw, err := results.DecodeRaw(w.Bytes())
				if err != nil {
					t.Fatal(err)
				}
				if tc.overlap != "" {
					raw.Config = json.RawMessage(`{"validity":` + tc.overlap + `}`)
				}
				if raws[w.Rank], err = json.Marshal(raw); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Run(context.Background(), save(t, "overlap", raws), "overlap", Options{})
			var ce *CheckError
			switch {
			case tc.fail == "" && err != nil:
				t.Fatalf("aggregation failed: %v", err)
			case tc.fail != "" && (!errors.As(err, &ce) || len(ce.Failures) != 1 || ce.Failures[0].Code != CodeWindowsNotConcurrent ||
				!strings.Contains(ce.Failures[0].Message, tc.fail)):
				t.Fatalf("error %v, want one windows_not_concurrent saying %q", err, tc.fail)
			}
		})
	}
}
