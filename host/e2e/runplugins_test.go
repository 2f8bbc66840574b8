package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunNamesTheCauseWhenAWorkersMeterPanics: a meter that panics inside a worker's Start fails
// the run (exit 1), and the parent's error carries the panic line from the plugin's stderr, not
// only "error reading from server: EOF".
func TestRunNamesTheCauseWhenAWorkersMeterPanics(t *testing.T) {
	plugins := pluginDirWithBad(t, "panicstart")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "experiment.toml")
	if err := os.WriteFile(cfg, []byte(experiment("panic", 1, "\n[energy]\nmeters = [\"panicstart\"]\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	r := lemctl(t, nil, "run", cfg, "--plugin-dir", plugins, "--results-dir", filepath.Join(dir, "results"), "--progress", "quiet")
	if code := r.wait(t, 3*time.Minute); code != 1 {
		t.Fatalf("run exited %d, want 1\nstderr:\n%s", code, r.stderr.String())
	}
	errOut := r.stderr.String()
	last := errOut[strings.LastIndex(strings.TrimSpace(errOut), "\nlemctl: ")+1:]
	for _, want := range []string{"died", "panic: badplugin: simulated panic in Start"} {
		if !strings.Contains(last, want) {
			t.Errorf("the run's error does not say %q:\n%s", want, last)
		}
	}
}

// TestRunAppliesConfiguredCallDeadlines: launch.call_timeouts.control_s bounds a worker's meter
// call: a meter whose Start never answers fails the run with exit 1, naming the plugin, the call
// and the deadline, and no plugin process outlives lemctl.
func TestRunAppliesConfiguredCallDeadlines(t *testing.T) {
	plugins := pluginDirWithBad(t, "starthang")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "experiment.toml")
	extra := "\n[energy]\nmeters = [\"starthang\"]\n"
	if err := os.WriteFile(cfg, []byte(experiment("hang", 1, extra)), 0o644); err != nil {
		t.Fatal(err)
	}
	pids := filepath.Join(dir, "pids")
	r := lemctl(t, []string{"LEM_TEST_PID_FILE=" + pids}, "run", cfg, "--plugin-dir", plugins,
		"--results-dir", filepath.Join(dir, "results"), "--progress", "quiet",
		"--set", "launch.call_timeouts.control_s=2")
	// A hang guard only: the deadline is 2 s, the watchdog's default 300 s.
	if code := r.wait(t, 3*time.Minute); code != 1 {
		t.Fatalf("run exited %d, want 1\nstderr:\n%s", code, r.stderr.String())
	}
	if want := "plugin starthang: call Meter.Start did not answer within 2s"; !strings.Contains(r.stderr.String(), want) {
		t.Errorf("stderr does not say %q:\n%s", want, r.stderr.String())
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
		for end := time.Now().Add(30 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("plugin process %d outlived lemctl run", pid)
			}
		}
	}
}
