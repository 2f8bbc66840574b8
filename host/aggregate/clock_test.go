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

var hostB = results.Host{Hostname: "node-b", BootID: "boot-b"}

// twoHosts is one GPU worker on node-a, whose monotonic clock reads about 1 h, and one on
// node-b, whose monotonic clock reads about 9 h (booted 8 h earlier): their monotonic times
// never compare. bStartWall is rank 1's window start in wall seconds after rank 0's; both
// windows last 20 s. Each records its clock offsets and a synchronized clock with maxErrUS of
// maximum error (nil sync: unsynchronized). The recorded unix times are made useless on purpose
// (all zero), so that only the offsets can place the windows.
func twoHosts(t *testing.T, exp string, bStartWall int64, syncB *bool, maxErrUS int64, domainID string) map[int][]byte {
	t.Helper()
	const (
		monoA = 3600 * sec     // node-a's monotonic clock at rank 0's window start
		monoB = 9 * 3600 * sec // node-b's
		wall0 = 1_796_000_000 * sec
	)
	ws := gpuPair(exp)
	ws[0].Host, ws[0].StartMonoNS, ws[0].EndMonoNS = hostA, monoA, monoA+20*sec
	ws[1].Host, ws[1].StartMonoNS, ws[1].EndMonoNS = hostB, monoB, monoB+20*sec
	if domainID != "" {
		for i := range ws {
			ws[i].Domains = []resultstest.DomainSpec{{ID: domainID, Kind: "psys", Scope: "node", PowerW: 80}}
		}
	}
	offsets := []int64{wall0 - monoA, wall0 + bStartWall*sec - monoB}
	for i := range ws {
		ws[i].WallOffsetNS = offsets[i]
	}
	yes := true
	syncs := []*bool{&yes, syncB}
	raws := map[int][]byte{}
	for i, w := range ws {
		raw, err := results.DecodeRaw(w.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		me := maxErrUS
		cs := results.ClockSync{Source: "adjtimex", Synchronized: syncs[i], MaxErrorUS: &me}
		if syncs[i] == nil {
			cs = results.ClockSync{Source: "adjtimex", Reason: "adjtimex: operation not permitted"}
		}
		raw.Clock = &results.Clock{MonoToUnixNS: offsets[i], MonoToUnixEndNS: offsets[i], Sync: cs}
		raw.Window.StartUnixNS, raw.Window.EndUnixNS = 0, 0
		if raws[w.Rank], err = json.Marshal(raw); err != nil {
			t.Fatal(err)
		}
	}
	return raws
}

func findingsOf(a *results.Aggregated, code string) []results.Finding {
	var out []results.Finding
	for _, f := range a.Validity.Findings {
		if f.Code == code {
			out = append(out, f)
		}
	}
	return out
}

// TestConcurrencyAcrossHostsUsesClockOffsets: windows of two hosts whose monotonic clocks differ
// by 8 h are placed on wall time by each worker's recorded offset; the check states its
// tolerance (the two hosts' maximum errors), fails beyond it naming it, and only warns when the
// windows meet the overlap within it. An unsynchronized host is assumed 1 s off, with a warning.
func TestConcurrencyAcrossHostsUsesClockOffsets(t *testing.T) {
	yes, no := true, false
	cases := []struct {
		name       string
		bStart     int64 // rank 1's window start, s of wall time after rank 0's
		nudgeNS    int64 // and this many ns more
		sync       *bool
		fail       string // the windows_not_concurrent message's part; "" none
		uncertain  bool   // windows_concurrency_uncertain expected
		unsynced   bool   // clock_unsynchronized expected
		tolerance  string // in the clock_compared finding
		unionWantS float64
	}{
		{"overlapping, synchronized", 2, 0, &yes, "", false, false, "±0.020 s", 22},
		{"apart, synchronized", 15, 0, &yes, "even with the clock tolerance of ±0.020 s between hosts", false, false, "", 0},
		{"short by 0.5 s, synchronized", 10, 5e8, &yes, "9.500 s in common on wall time", false, false, "", 0},
		{"short by 1 ms, synchronized", 10, 1e6, &yes, "", true, false, "±0.020 s", 30.001},
		{"short by 0.5 s, unsynchronized", 10, 5e8, &no, "", true, true, "±1.010 s", 30.5},
		{"short by 0.5 s, unknown state", 10, 5e8, nil, "", true, true, "±1.010 s", 30.5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raws := twoHosts(t, "hosts", tc.bStart, tc.sync, 10_000, "")
			if tc.nudgeNS != 0 {
				raws = nudge(t, raws, 1, tc.nudgeNS)
			}
			out, err := Run(context.Background(), save(t, "hosts", raws), "hosts", Options{})
			var ce *CheckError
			if tc.fail != "" {
				if !errors.As(err, &ce) || len(ce.Failures) != 1 || ce.Failures[0].Code != CodeWindowsNotConcurrent || !strings.Contains(ce.Failures[0].Message, tc.fail) {
					t.Fatalf("error %v, want windows_not_concurrent saying %q", err, tc.fail)
				}
				return
			}
			if err != nil {
				t.Fatalf("aggregation failed: %v", err)
			}
			a := out.Aggregated
			cc := findingsOf(a, CodeClockCompared)
			if len(cc) != 1 || !strings.Contains(cc[0].Message, "2 hosts") || !strings.Contains(cc[0].Message, tc.tolerance) {
				t.Errorf("clock_compared findings %+v, want one naming 2 hosts and %s", cc, tc.tolerance)
			}
			if got := len(findingsOf(a, CodeWindowsConcurrencyUncertain)); (got == 1) != tc.uncertain {
				t.Errorf("%d windows_concurrency_uncertain findings, want uncertain=%v", got, tc.uncertain)
			}
			if got := findingsOf(a, CodeClockUnsynchronized); (len(got) == 1) != tc.unsynced || (tc.unsynced && !strings.Contains(got[0].Message, "node-b")) {
				t.Errorf("clock_unsynchronized findings %+v, want one for node-b: %v", got, tc.unsynced)
			}
			if a.Window.UnionS == nil || *a.Window.UnionS < tc.unionWantS-0.01 || *a.Window.UnionS > tc.unionWantS+0.01 {
				t.Errorf("union of the windows %v s, want %g s (placed by the offsets)", deref(a.Window.UnionS), tc.unionWantS)
			}
		})
	}
}

// nudge moves rank's window later by ns on its wall clock (its offsets).
func nudge(t *testing.T, raws map[int][]byte, rank int, ns int64) map[int][]byte {
	t.Helper()
	raw, err := results.DecodeRaw(raws[rank])
	if err != nil {
		t.Fatal(err)
	}
	raw.Clock.MonoToUnixNS += ns
	raw.Clock.MonoToUnixEndNS += ns
	if raws[rank], err = json.Marshal(raw); err != nil {
		t.Fatal(err)
	}
	return raws
}

// TestNodeDomainsStitchedPerHost: the same node-scoped domain id on two hosts is two domains (one
// per host), each counted once, never merged across hosts.
func TestNodeDomainsStitchedPerHost(t *testing.T) {
	raws := twoHosts(t, "node-domains", 2, func() *bool { b := true; return &b }(), 10_000, "intel-rapl:1")
	out, err := Run(context.Background(), save(t, "node-domains", raws), "node-domains", Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := out.Aggregated.Energy.Domains
	if len(d) != 2 || d[0].Host == nil || d[1].Host == nil || d[0].Host.Hostname == d[1].Host.Hostname {
		t.Fatalf("domains %+v, want intel-rapl:1 once on each of node-a and node-b", d)
	}
	for _, dom := range d {
		if dom.TotalJ == nil || *dom.TotalJ < 80*20*0.99 || *dom.TotalJ > 80*20*1.01 {
			t.Errorf("%s on %s: %v J, want 80 W × 20 s = 1600 J", dom.ID, dom.Host.Hostname, deref(dom.TotalJ))
		}
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}
