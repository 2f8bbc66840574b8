package resultscmd

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/sysinfo"
)

// A "running" manifest whose lemctl is gone lists and shows as abandoned; one whose lemctl lives
// stays running.
func TestAbandonedRunsAreShown(t *testing.T) {
	repo := repoWithAggregates(t)
	sys := sysinfo.Default()
	h, err := sys.Host()
	if err != nil {
		t.Skip("no host identity here:", err)
	}
	host := results.Host(h)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	myStart, err := sys.ProcessStart(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	save := func(exp string, pid int, start uint64, boot string) {
		hh := host
		hh.BootID = boot
		m := &results.Manifest{SchemaVersion: results.SchemaVersion, Kind: results.KindManifest, ExperimentID: exp, State: results.StateRunning,
			WorldSize: 2, LemctlVersion: "test", LemctlPID: pid, LemctlStartTicks: start, LemctlHost: &hh}
		data, err := results.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := repo.SaveManifest(context.Background(), exp, data); err != nil {
			t.Fatal(err)
		}
	}
	save("two-gpus", dead.Process.Pid, 0, host.BootID)         // lemctl killed
	save("missing-rank", os.Getpid(), myStart, "another-boot") // the host rebooted since
	save("missing-marker", os.Getpid(), myStart, host.BootID)  // still running (this process)
	save("corrupted", os.Getpid(), myStart+1, host.BootID)     // the pid was reused by a later process

	out, stderr, code := execute(t, repo, "list", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got []ListEntry
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"two-gpus": "abandoned", "missing-rank": "abandoned", "missing-marker": "running", "corrupted": "abandoned", "mixed-config": ""}
	for _, e := range got {
		if w, ok := want[e.ID]; ok && e.State != w {
			t.Errorf("%s: state %q, want %q", e.ID, e.State, w)
		}
	}
	out, _, _ = execute(t, repo, "list")
	if !strings.Contains(out, "STATE") || !strings.Contains(out, "abandoned") {
		t.Errorf("the table does not show the abandoned state:\n%s", out)
	}
	_, stderr, code = execute(t, repo, "show", "two-gpus")
	if code != 1 || !strings.Contains(stderr, "abandoned") || !strings.Contains(stderr, "aggregate two-gpus --no-strict") {
		t.Errorf("show of an abandoned run without aggregate: exit %d, stderr %q", code, stderr)
	}
}
