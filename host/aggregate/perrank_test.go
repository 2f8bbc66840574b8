package aggregate

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/results/resultstest"
	"github.com/lemctl/lemctl/sdk"
)

// TestPerRankProblemsStayPerRank: a bad marker or raw result of rank 1 leaves rank 1 out with a
// finding naming the rank and the file; strict refuses naming them, --no-strict aggregates rank 0.
func TestPerRankProblemsStayPerRank(t *testing.T) {
	ws := gpuPair("x")
	good := map[int][]byte{0: ws[0].Bytes(), 1: ws[1].Bytes()}
	tests := []struct {
		name   string
		break_ func(m *resultstest.Memory)
		code   string
		msg    []string // the failure's message holds each
	}{
		{"unparsable marker", func(m *resultstest.Memory) {
			m.PutMarkerProblem("x", 1, "completion marker /r/raw/x/.completed_1 does not parse (3 bytes): unexpected end of JSON input")
		}, CodeMarkerInvalid, []string{"rank 1: completion marker /r/raw/x/.completed_1 does not parse", "mem:raw/x/process_1.json", "rank 1 left out"}},
		{"marker of another rank", func(m *resultstest.Memory) {
			m.PutMarkerAt("x", 1, sdk.Marker{Rank: 0, SHA256: sha(good[1])})
		}, CodeMarkerInvalid, []string{"rank 1: the completion marker of mem:raw/x/process_1.json says rank 0", "rank 1 left out"}},
		{"checksum mismatch", func(m *resultstest.Memory) {
			m.PutRaw("x", 1, append(append([]byte(nil), good[1]...), ' '))
		}, CodeChecksumMismatch, []string{"rank 1:", "mem:raw/x/process_1.json differs from its completion marker's", "rank 1 left out"}},
		{"unparsable raw result", func(m *resultstest.Memory) {
			m.PutRaw("x", 1, []byte("{torn"))
			m.PutMarkerAt("x", 1, sdk.Marker{Rank: 1, SHA256: sha([]byte("{torn"))})
		}, CodeRawInvalid, []string{"rank 1: mem:raw/x/process_1.json: decode raw result", "rank 1 left out"}},
		{"raw result naming another rank", func(m *resultstest.Memory) {
			m.PutRaw("x", 1, good[0])
			m.PutMarkerAt("x", 1, sdk.Marker{Rank: 1, SHA256: sha(good[0])})
		}, CodeRawInvalid, []string{`rank 1: mem:raw/x/process_1.json says experiment "x" rank 0`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			repo := save(t, "x", good)
			tc.break_(repo)
			_, err := Run(context.Background(), repo, "x", Options{})
			var ce *CheckError
			if !errors.As(err, &ce) {
				t.Fatalf("strict: %v, want a CheckError", err)
			}
			if ce.Usable != 1 || !strings.Contains(ce.Error(), "--no-strict writes a partial aggregate") {
				t.Errorf("strict refusal: usable %d, message %q; want 1 usable rank and the --no-strict hint", ce.Usable, ce.Error())
			}
			if len(ce.Failures) != 1 || ce.Failures[0].Code != tc.code || ce.Failures[0].Rank == nil || *ce.Failures[0].Rank != 1 {
				t.Fatalf("strict failures %+v, want one %s of rank 1", ce.Failures, tc.code)
			}
			for _, m := range tc.msg {
				if !strings.Contains(ce.Failures[0].Message, m) {
					t.Errorf("failure %q lacks %q", ce.Failures[0].Message, m)
				}
			}
			a := run(t, repo, "x", Options{NoStrict: true})
			if !slices.Equal(a.Ranks, []int{0}) || !a.Partial || a.Validity.Valid || a.Workload.Requests != 4 {
				t.Errorf("--no-strict: ranks %v partial %v valid %v requests %d; want rank 0 alone, partial, invalid, 4 requests",
					a.Ranks, a.Partial, a.Validity.Valid, a.Workload.Requests)
			}
			found := false
			for _, f := range a.Validity.Findings {
				found = found || f.Code == tc.code && f.Severity == results.SeverityError && f.Rank != nil && *f.Rank == 1
			}
			if !found {
				t.Errorf("--no-strict findings %+v lack the %s error of rank 1", a.Validity.Findings, tc.code)
			}
		})
	}
}

// TestStrayFilesAreWarnings: names that look like raw results but are not read are warnings in
// the aggregate, naming the file; they do not block a strict aggregation.
func TestStrayFilesAreWarnings(t *testing.T) {
	ws := gpuPair("x")
	repo := save(t, "x", map[int][]byte{0: ws[0].Bytes(), 1: ws[1].Bytes()})
	repo.PutStray("x", sdk.Stray{Path: "/r/raw/x/process_00.json", Problem: "not a canonical name"})
	repo.PutStray("x", sdk.Stray{Path: "/r/raw/x/.tmp-process_1.json-ab", Problem: "temporary file"})
	a := run(t, repo, "x", Options{})
	var got []string
	for _, f := range a.Validity.Findings {
		if f.Code == CodeStrayFile && f.Severity == results.SeverityWarning {
			got = append(got, f.Message)
		}
	}
	if len(got) != 2 || !strings.Contains(got[0], "/r/raw/x/process_00.json: not a canonical name") || !strings.Contains(got[1], ".tmp-process_1.json-ab") {
		t.Errorf("stray warnings %q, want both files named", got)
	}
	if a.Partial || !a.Validity.Valid || !slices.Equal(a.Ranks, []int{0, 1}) {
		t.Errorf("partial %v valid %v ranks %v: strays must not change the aggregate", a.Partial, a.Validity.Valid, a.Ranks)
	}
}

// TestNothingUsableHasNoPartialHint: when no rank left a usable raw result, the refusal says
// there is nothing to aggregate rather than suggesting --no-strict.
func TestNothingUsableHasNoPartialHint(t *testing.T) {
	ws := gpuPair("x")
	repo := save(t, "x", map[int][]byte{0: ws[0].Bytes(), 1: ws[1].Bytes()})
	repo.PutMarkerProblem("x", 0, "completion marker .completed_0 does not parse")
	repo.PutMarkerProblem("x", 1, "completion marker .completed_1 does not parse")
	for _, noStrict := range []bool{false, true} {
		_, err := Run(context.Background(), repo, "x", Options{NoStrict: noStrict})
		var ce *CheckError
		if !errors.As(err, &ce) || ce.Usable != 0 {
			t.Fatalf("no-strict=%v: %v, want a CheckError with nothing usable", noStrict, err)
		}
		if msg := ce.Error(); strings.Contains(msg, "writes a partial aggregate") || !strings.Contains(msg, "nothing to aggregate") ||
			!strings.Contains(msg, ".completed_0") || !strings.Contains(msg, ".completed_1") {
			t.Errorf("no-strict=%v: message %q; want both markers named and no --no-strict hint", noStrict, msg)
		}
	}
}
