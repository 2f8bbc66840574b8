package aggregate

import (
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/results/resultstest"
)

func rawBytes(ws ...resultstest.Worker) map[int][]byte {
	out := map[int][]byte{}
	for _, w := range ws {
		out[w.Rank] = w.Bytes()
	}
	return out
}

// A counter reset on one worker's domain (an error in the domain's health, as the nvml plugin
// reports it) makes that raw result invalid, and so the aggregate that includes it.
func TestDomainHealthErrorInvalidatesAggregate(t *testing.T) {
	ws := gpuPair("reset")
	reset := results.Finding{Code: "counter_reset", Severity: results.SeverityError, Message: "the energy counter went backwards (driver reload?)"}
	ws[1].Domains[0].Health = []results.Finding{reset}
	if ws[1].Raw().Validity.Valid {
		t.Fatal("fixture: the raw result with a counter reset must be invalid")
	}
	a := run(t, save(t, "reset", rawBytes(ws...)), "reset", Options{})
	if a.Validity.Valid {
		t.Error("aggregate valid = true while rank 1's GPU-bbb had a counter_reset error")
	}
	h := domain(t, a, "GPU-bbb").Health
	if len(h) != 1 || h[0].Code != "counter_reset" || h[0].Rank == nil || *h[0].Rank != 1 {
		t.Errorf("GPU-bbb health = %+v, want counter_reset tagged rank 1", h)
	}
}

// A raw result that says invalid keeps the aggregate invalid even when it lists no error.
func TestRawVerdictKept(t *testing.T) {
	ws := gpuPair("verdict")
	r := ws[1].Raw()
	r.Validity.Valid = false
	b, err := results.Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	raws := rawBytes(ws[0])
	raws[1] = b
	a := run(t, save(t, "verdict", raws), "verdict", Options{})
	if a.Validity.Valid || !hasFinding(a.Validity.Findings, CodeRankInvalid, 1) {
		t.Errorf("valid = %v, findings %+v; want invalid with rank_invalid for rank 1", a.Validity.Valid, a.Validity.Findings)
	}
}

func hasFinding(fs []results.Finding, code string, rank int) bool {
	for _, f := range fs {
		if f.Code == code && f.Rank != nil && *f.Rank == rank {
			return true
		}
	}
	return false
}

// The containment rule applies per host: a node domain counts instead of the package, DRAM and
// GPU domains of its own host, never instead of another host's; each host's set adds.
func TestCountedDomainsPerHost(t *testing.T) {
	hostB := results.Host{Hostname: "node-b", BootID: "boot-b"}
	ws := gpuPair("hosts")
	ws[0].Domains = []resultstest.DomainSpec{{ID: "pdu", Kind: "node", Scope: "node", PowerW: 400},
		{ID: "intel-rapl:0", Kind: "package", Scope: "socket", PowerW: 50}, gpuDomain("GPU-aaa", 200)}
	ws[1].Host = hostB
	ws[1].Domains = []resultstest.DomainSpec{{ID: "intel-rapl:0", Kind: "package", Scope: "socket", PowerW: 60},
		{ID: "intel-rapl:0:2", Kind: "dram", Scope: "socket", PowerW: 5}}
	a := run(t, save(t, "hosts", rawBytes(ws...)), "hosts", Options{})
	// 20 s windows: node-a's pdu (400 W) + node-b's package (60 W) and DRAM (5 W).
	near(t, "energy.total_j", a.Energy.TotalJ, 20*(400+60+5), 1e-6)
	near(t, "repeat 0 energy", a.Repeats[0].EnergyJ, 20*(400+60+5), 1e-6)
	if got := strings.Join(a.Energy.CountedDomains, ","); got != "node-a/pdu,node-b/intel-rapl:0,node-b/intel-rapl:0:2" {
		t.Errorf("counted_domains = %s", got)
	}
	for _, d := range a.Energy.Domains {
		wantCounted := d.ID == "pdu" || d.Host.Hostname == "node-b"
		if d.Counted != wantCounted || d.TotalJ == nil {
			t.Errorf("%s on %s: counted %v (want %v), total %v", d.ID, d.Host.Hostname, d.Counted, wantCounted, d.TotalJ)
		}
		if d.Host.Hostname == "node-a" && d.ID != "pdu" && !strings.Contains(d.NotCounted, "inside node domain pdu") {
			t.Errorf("%s on node-a: not_counted = %q, want inside node domain pdu", d.ID, d.NotCounted)
		}
	}
}
