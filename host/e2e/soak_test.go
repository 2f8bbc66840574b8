package e2e

import (
	"os"
	"testing"
	"time"
)

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// TestFaultSoakLeaksNothing: 20 runs back to back, each with two workers and a meter, leave
// nothing behind: every run completed with its manifest, no process of any run is alive, the
// temporary directory the runs were given (plugin sockets, go-plugin's files, temp files) is
// empty, and the caller holds no more file descriptors than before.
func TestFaultSoakLeaksNothing(t *testing.T) {
	const runs = 20
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	before := openFDs(t)
	for i := 0; i < runs; i++ {
		f := startFault(t, "soak", 2, "", "", false)
		if code := f.wait(t, 5*time.Minute); code != 0 {
			t.Fatalf("run %d: exit %d\n%s", i, code, f.stderr.String())
		}
		if m := readManifest(t, f.res, experimentID(t, f.res)); m.State != "completed" {
			t.Fatalf("run %d: manifest %q, want completed", i, m.State)
		}
		f.assertNothingLeft(t)
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	if len(names) > 0 {
		t.Errorf("after %d runs the temporary directory holds %v", runs, names)
	}
	if after := openFDs(t); after > before {
		t.Errorf("open file descriptors: %d before the runs, %d after", before, after)
	}
}
