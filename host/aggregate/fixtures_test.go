package aggregate

import (
	"bytes"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/results/resultstest"
)

var update = flag.Bool("update", false, "rewrite testdata/results from the fixture scenarios")

const (
	sec        = int64(1e9)
	wallOffset = int64(1_796_000_000) * sec // mono + wallOffset = unix time (2026-11)
)

var hostA = results.Host{Hostname: "node-a", BootID: "boot-a"}

func cpuDev(slot int) results.Device {
	return results.Device{Kind: "cpu", Index: -1, Name: "Fake CPU", Slot: "cpu:" + string(rune('0'+slot))}
}

func gpuDev(i int, uuid string) results.Device {
	return results.Device{Kind: "cuda", Index: i, UUID: uuid, Name: "Fake GPU", Slot: "cuda:" + string(rune('0'+i))}
}

// RAPL-like domains of one socket, seen by every worker on the host.
func socketDomains() []resultstest.DomainSpec {
	return []resultstest.DomainSpec{
		{ID: "intel-rapl:0", Kind: "package", Scope: "socket", PowerW: 50, IdleW: results.Float(10), UncertaintyJ: results.Float(0.5)},
		{ID: "intel-rapl:0:0", Kind: "core", Scope: "socket", PowerW: 30},
		{ID: "intel-rapl:0:2", Kind: "dram", Scope: "socket", PowerW: 5, IdleW: results.Float(2), UncertaintyJ: results.Float(0.2)},
		{ID: "intel-rapl:1", Kind: "psys", Scope: "node", PowerW: 80},
	}
}

func gpuDomain(uuid string, w float64) resultstest.DomainSpec {
	return resultstest.DomainSpec{ID: uuid, Kind: "gpu", Scope: "device", PowerW: w, IdleW: results.Float(w / 4), UncertaintyJ: results.Float(w / 100)}
}

// gpuPair is two GPU workers on one host, each seeing only its own GPU, same window.
func gpuPair(exp string) []resultstest.Worker {
	base := resultstest.Worker{Exp: exp, WorldSize: 2, Host: hostA, StartMonoNS: 100 * sec, EndMonoNS: 120 * sec,
		WallOffsetNS: wallOffset, Repeats: 1, RequestsPerRepeat: 4, InputTokens: 16, OutputTokens: 8,
		TTFTNS: 50e6, ITLNS: 20e6, FLOPsPerToken: 1e6, SampleEveryNS: sec}
	w0, w1 := base, base
	w0.Rank, w0.Device, w0.Domains, w0.PeakBytes = 0, gpuDev(0, "GPU-aaa"), []resultstest.DomainSpec{gpuDomain("GPU-aaa", 200)}, results.Int64(1<<30)
	w1.Rank, w1.Device, w1.Domains, w1.PeakBytes = 1, gpuDev(1, "GPU-bbb"), []resultstest.DomainSpec{gpuDomain("GPU-bbb", 100)}, results.Int64(2<<30)
	return []resultstest.Worker{w0, w1}
}

// scenario is one experiment of the fixture tree.
type scenario struct {
	exp      string
	workers  []resultstest.Worker
	noMarker map[int]bool
	corrupt  map[int]bool
}

func scenarios() []scenario {
	// Two CPU workers on one host with staggered windows, both seeing the same socket.
	shared := resultstest.Worker{Exp: "shared-package", WorldSize: 2, Host: hostA, WallOffsetNS: wallOffset,
		Repeats: 2, RequestsPerRepeat: 4, InputTokens: 16, OutputTokens: 8, ITLNS: 20e6,
		Domains: socketDomains(), FLOPsPerToken: 1e6, MeterCPUS: results.Float(0.5)}
	s0, s1 := shared, shared
	s0.Rank, s0.Device, s0.StartMonoNS, s0.EndMonoNS, s0.TTFTNS, s0.SampleEveryNS = 0, cpuDev(0), 100*sec, 120*sec, 50e6, 250e6
	s1.Rank, s1.Device, s1.StartMonoNS, s1.EndMonoNS, s1.TTFTNS, s1.SampleEveryNS = 1, cpuDev(1), 105*sec, 125*sec, 70e6, 300e6
	s1.Findings = []results.Finding{{Code: "throttled", Severity: "warning", Message: "thermal clock events during the window"}}

	missingRank := gpuPair("missing-rank")
	missingRank[1].Rank = 2
	for i := range missingRank {
		missingRank[i].WorldSize = 3
	}
	dup := gpuPair("duplicate-slot")
	dup[1].Device = dup[0].Device
	apart := gpuPair("not-concurrent")
	apart[1].StartMonoNS, apart[1].EndMonoNS = 130*sec, 150*sec
	mixed := gpuPair("mixed-config")
	mixed[1].ConfigHash = "beef"

	return []scenario{
		{exp: "shared-package", workers: []resultstest.Worker{s0, s1}},
		{exp: "two-gpus", workers: gpuPair("two-gpus")},
		{exp: "missing-marker", workers: gpuPair("missing-marker"), noMarker: map[int]bool{1: true}},
		{exp: "corrupted", workers: gpuPair("corrupted"), corrupt: map[int]bool{1: true}},
		{exp: "missing-rank", workers: missingRank},
		{exp: "duplicate-slot", workers: dup},
		{exp: "not-concurrent", workers: apart},
		{exp: "mixed-config", workers: mixed},
	}
}

func writeScenarios(root string) error {
	for _, s := range scenarios() {
		raws := map[int][]byte{}
		for _, w := range s.workers {
			raws[w.Rank] = w.Bytes()
		}
		if err := resultstest.WriteTree(root, s.exp, raws, s.noMarker, s.corrupt); err != nil {
			return err
		}
	}
	return nil
}

// TestFixturesUpToDate regenerates the fixture tree and compares it with the committed one
// (go test ./host/aggregate -run TestFixturesUpToDate -update rewrites it).
func TestFixturesUpToDate(t *testing.T) {
	committed := filepath.Join("testdata", "results")
	if *update {
		if err := os.RemoveAll(committed); err != nil {
			t.Fatal(err)
		}
		if err := writeScenarios(committed); err != nil {
			t.Fatal(err)
		}
	}
	fresh := t.TempDir()
	if err := writeScenarios(fresh); err != nil {
		t.Fatal(err)
	}
	n := 0
	err := filepath.WalkDir(fresh, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(fresh, p)
		want, _ := os.ReadFile(p)
		got, err := os.ReadFile(filepath.Join(committed, rel))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("testdata/results/%s is stale (run go test -run TestFixturesUpToDate -update): %v", rel, err)
		}
		n++
		return nil
	})
	if err != nil || n == 0 {
		t.Fatalf("walk: %v (%d files)", err, n)
	}
}

// fixtures loads the committed fixture tree into an in-memory repository.
func fixtures(t *testing.T) *resultstest.Memory {
	t.Helper()
	m, err := resultstest.LoadTree(filepath.Join("testdata", "results"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}
