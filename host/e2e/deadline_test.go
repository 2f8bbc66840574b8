package e2e

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMeasureFailsWhenMeterStartHangs: a meter whose Start never answers makes `lemctl measure`
// fail with exit 1, naming the plugin, the call and the deadline, and leaves no plugin process
// behind.
func TestMeasureFailsWhenMeterStartHangs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "plugins")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "badplugin")
	if err := gobuild(repoRoot, "./host/discovery/internal/badplugin", bad); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(bad, filepath.Join(dir, "lem-plugin-starthang")); err != nil {
		t.Fatal(err)
	}
	pids := filepath.Join(t.TempDir(), "pids")
	marker := filepath.Join(t.TempDir(), "ran")
	r := lemctl(t, []string{"LEM_TEST_PID_FILE=" + pids}, "measure", "--plugin-dir", dir, "--meter", "starthang",
		"--call-timeout", "1s", "--", "touch", marker)
	// The wait is a hang guard only: the deadline is 1 s.
	if code := r.wait(t, 2*time.Minute); code != 1 {
		t.Fatalf("measure exited %d, want 1\nstderr:\n%s", code, r.stderr.String())
	}
	if want := "plugin starthang: call Meter.Start did not answer within 1s"; !strings.Contains(r.stderr.String(), want) {
		t.Errorf("stderr does not say %q:\n%s", want, r.stderr.String())
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the command ran although a meter never started (stat: %v)", err)
	}
	raw, err := os.ReadFile(pids)
	if err != nil {
		t.Fatalf("the plugin did not record its pid: %v", err)
	}
	for _, f := range strings.Fields(string(raw)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		// Hang guard: the plugin is killed before measure exits; its zombie is reaped by init.
		for end := time.Now().Add(30 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("plugin process %d outlived lemctl measure", pid)
			}
		}
	}
}

// TestMeasureAutoRefusesMeterWhoseInventoryHangs: without --meter, a meter whose Inventory never
// answers is left out with a warning naming the plugin, the call and the deadline, and measure
// still runs the command.
func TestMeasureAutoRefusesMeterWhoseInventoryHangs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "plugins")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "badplugin")
	if err := gobuild(repoRoot, "./host/discovery/internal/badplugin", bad); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(bad, filepath.Join(dir, "lem-plugin-invhang")); err != nil {
		t.Fatal(err)
	}
	r := lemctl(t, nil, "measure", "--plugin-dir", dir, "--call-timeout", "1s", "--", "true")
	if code := r.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("measure exited %d, want 0\nstderr:\n%s", code, r.stderr.String())
	}
	if want := "plugin invhang: call Meter.Inventory did not answer within"; !strings.Contains(r.stderr.String(), want) {
		t.Errorf("stderr does not say %q:\n%s", want, r.stderr.String())
	}
}
