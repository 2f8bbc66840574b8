package discovery

import (
	"context"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lemctl/lemctl/host/results"
)

// TestAutoMeters: under meters = "auto", every way an installed meter can be unusable (lock
// mismatch, crash, stdout garbage, handshake hang, a failing Inventory) is refused with its
// reason and a warning; a meter whose Inventory says sdk.ErrUnavailable is a quiet note; a
// plugin known not to be a meter is not mentioned; the good meter is selected.
func TestAutoMeters(t *testing.T) {
	t.Parallel()
	dir := mkdir(t, "bin", "plugins")
	install(t, dir, "good-meter")
	changed := install(t, dir, "good-changed")
	for _, n := range []string{"crash", "stdout", "hang", "invfail", "invunavail", "misname-loader"} {
		install(t, dir, n)
	}
	if _, err := LockDirs([]string{dir}, ""); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(changed, os.O_APPEND|os.O_WRONLY, 0) // still runs; its hash differs
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("tampered")
	f.Close()
	env := specEnv(t, map[string]specEntry{"misname-loader": {Mode: "misname", Kinds: []string{"loader"}}})
	var logs syncBuffer
	cat := discover(t, Options{Dirs: []string{dir}, Env: []string{env}, StartTimeout: 2 * time.Second, Logger: testLogger(&logs)})
	defer cat.Close()

	names, refused := cat.AutoMeters(context.Background(), nil)
	if strings.Join(names, ",") != "good-meter" {
		t.Errorf("selected %v, want [good-meter]", names)
	}
	got := map[string]Refused{}
	for _, r := range refused {
		got[r.Name] = r
	}
	want := map[string]string{
		"good-changed": "differs from", "crash": "crash", "stdout": "stdout", "hang": "handshake",
		"invfail": "inventory: simulated inventory failure", "invunavail": "no simulated hardware",
	}
	var gotNames []string
	for n := range got {
		gotNames = append(gotNames, n)
	}
	sort.Strings(gotNames)
	if len(got) != len(want) {
		t.Errorf("refused %v, want %d: %v", gotNames, len(want), want)
	}
	for n, why := range want {
		r, ok := got[n]
		if !ok || !strings.Contains(r.Reason, why) {
			t.Errorf("%s: refused %v with reason %q; want a reason containing %q", n, ok, r.Reason, why)
		}
		if r.Unavailable != (n == "invunavail") {
			t.Errorf("%s: Unavailable = %v", n, r.Unavailable)
		}
	}

	findings := RefusedFindings(testLogger(&logs), refused, "advice")
	if len(findings) != len(want)-1 {
		t.Errorf("%d findings, want %d (all but the unavailable meter): %+v", len(findings), len(want)-1, findings)
	}
	for _, f := range findings {
		if f.Code != results.CodeMeterRefused || f.Severity != results.SeverityWarning || f.Domain != "" || f.Rank != nil ||
			strings.Contains(f.Message, "invunavail") {
			t.Errorf("finding %+v", f)
		}
	}
	if !strings.Contains(logs.String(), "[INFO]  test: meter invunavail is unavailable on this hardware") {
		t.Errorf("the unavailable meter is not an info note:\n%s", logs.String())
	}
}

// TestAutoMetersPluginDyingInInventory: a meter that passed discovery (from the cache) but dies
// inside Inventory reaches the host as gRPC Unavailable — the code of sdk.ErrUnavailable — and
// must still be a warning, not a quiet "unavailable on this hardware".
func TestAutoMetersPluginDyingInInventory(t *testing.T) {
	t.Parallel()
	dir := mkdir(t, "bin", "plugins")
	install(t, dir, "dies")
	cache := t.TempDir()
	cat := discover(t, Options{Dirs: []string{dir}, CacheDir: cache, Env: []string{specEnv(t, map[string]specEntry{"dies": {Mode: "good"}})}})
	cat.Close()
	cat = discover(t, Options{Dirs: []string{dir}, CacheDir: cache, Env: []string{specEnv(t, map[string]specEntry{"dies": {Mode: "invcrash"}})}})
	defer cat.Close()
	if p, ok := cat.Find("dies"); !ok || !p.Cached {
		t.Fatalf("the second discovery did not answer from the cache: %+v", p)
	}
	names, refused := cat.AutoMeters(context.Background(), nil)
	if len(names) != 0 || len(refused) != 1 || refused[0].Unavailable || !strings.Contains(refused[0].Reason, "stopped answering") {
		t.Errorf("names %v, refused %+v; want dies refused as unusable (stopped answering), not unavailable", names, refused)
	}
}
