package discovery

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBadPlugins puts one misbehaving plugin beside a good one per case and checks that the bad
// one is reported with its path and cause, and that the good one is still listed.
func TestBadPlugins(t *testing.T) {
	tests := []struct {
		name string
		// setup creates the bad candidate in dir and returns its path.
		setup func(t *testing.T, dir string) string
		want  []string
		is    error
	}{
		{
			name: "not executable",
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, FilePrefix+"noexec")
				copyFile(t, badpluginBin, p, 0o644)
				return p
			},
			want: []string{"is not executable (mode 0644)", "chmod +x"},
		},
		{
			name: "empty name",
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, FilePrefix)
				copyFile(t, badpluginBin, p, 0o755)
				return p
			},
			want: []string{`invalid plugin file name "lem-plugin-"`},
		},
		{
			name: "name with a space",
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, FilePrefix+"my plugin")
				copyFile(t, badpluginBin, p, 0o755)
				return p
			},
			want: []string{`invalid plugin file name "lem-plugin-my plugin"`},
		},
		{
			name:  "prints to stdout before serving",
			setup: func(t *testing.T, dir string) string { return install(t, dir, "stdout") },
			want:  []string{"wrote to stdout before serving", "hello from a chatty plugin"},
		},
		{
			name:  "never completes the handshake",
			setup: func(t *testing.T, dir string) string { return install(t, dir, "hang") },
			want:  []string{"never completed the plugin handshake within the start timeout (3s)"},
		},
		{
			name:  "crashes at start",
			setup: func(t *testing.T, dir string) string { return install(t, dir, "crash") },
			want:  []string{"exited before completing the plugin handshake", "badplugin: simulated crash at start"},
		},
		{
			name:  "no common API version in the handshake",
			setup: func(t *testing.T, dir string) string { return install(t, dir, "api99") },
			want:  []string{"no common API version (plugin speaks [99], lemctl speaks [1])"},
			is:    ErrNoCommonAPIVersion,
		},
		{
			name:  "no common API version in Info",
			setup: func(t *testing.T, dir string) string { return install(t, dir, "infoapi") },
			want:  []string{"no common API version (plugin speaks [7], lemctl speaks [1])"},
			is:    ErrNoCommonAPIVersion,
		},
		{
			name:  "claims a kind it does not serve",
			setup: func(t *testing.T, dir string) string { return install(t, dir, "liar") },
			want:  []string{`claims kind "engine" but does not serve it`},
		},
		{
			name:  "answers with another name",
			setup: func(t *testing.T, dir string) string { return install(t, dir, "misname") },
			want:  []string{`calls itself "someone-else"`, "rename it lem-plugin-someone-else"},
		},
		{
			name: "is a directory",
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, FilePrefix+"dir")
				if err := os.Mkdir(p, 0o755); err != nil {
					t.Fatal(err)
				}
				return p
			},
			want: []string{"is a directory"},
		},
		{
			name: "world-writable binary",
			setup: func(t *testing.T, dir string) string {
				p := install(t, dir, "good-ww")
				if err := os.Chmod(p, 0o777); err != nil {
					t.Fatal(err)
				}
				return p
			},
			want: []string{"is world-writable (mode 0777)", "chmod o-w " + "<path>"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := mkdir(t, "plugins")
			good := install(t, dir, "good-a")
			bad := tc.setup(t, dir)
			// Files not named lem-plugin-* are never candidates.
			copyFile(t, badpluginBin, filepath.Join(dir, "helper-tool"), 0o755)
			cat := discover(t, Options{Dirs: []string{dir}, StartTimeout: 3 * time.Second})

			wantSelected(t, cat, "good-a", good)
			c := candidate(t, cat, bad)
			if c.Available || c.Selected || c.Err == nil {
				t.Fatalf("bad plugin %s is available=%v selected=%v err=%v", bad, c.Available, c.Selected, c.Err)
			}
			for _, w := range tc.want {
				w = strings.ReplaceAll(w, "<path>", bad)
				if !strings.Contains(c.Reason, w) {
					t.Errorf("reason %q does not contain %q", c.Reason, w)
				}
			}
			if tc.is != nil && !errors.Is(c.Err, tc.is) {
				t.Errorf("error %v is not %v", c.Err, tc.is)
			}
			if len(cat.Candidates) != 2 {
				t.Errorf("want 2 candidates (helper-tool is not one), got %d", len(cat.Candidates))
			}
		})
	}
}

// TestWorldWritableDirectory: every plugin of a world-writable directory is refused with the
// fix, and plugins elsewhere are still listed.
func TestWorldWritableDirectory(t *testing.T) {
	t.Parallel()
	safe := mkdir(t, "safe")
	open := mkdir(t, "open")
	good := install(t, safe, "good-a")
	bad := install(t, open, "good-b")
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	cat := discover(t, Options{Dirs: []string{safe, open}})
	wantSelected(t, cat, "good-a", good)
	c := candidate(t, cat, bad)
	for _, w := range []string{"plugin directory " + open + " is world-writable (mode 0777)", "Fix: chmod o-w " + open} {
		if !strings.Contains(c.Reason, w) {
			t.Errorf("reason %q does not contain %q", c.Reason, w)
		}
	}
	if c.Available {
		t.Error("plugin in a world-writable directory is available")
	}
	// Sticky or not, a world-writable directory lets anyone add plugins.
	if err := os.Chmod(open, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	cat = discover(t, Options{Dirs: []string{safe, open}})
	if c := candidate(t, cat, bad); c.Available {
		t.Error("plugin in a sticky world-writable directory is available")
	}
}

// TestLockRefusesBeforeRunning: a locked directory's binary whose hash differs, or which the
// lock does not list, is refused without being started; the others still work.
func TestLockRefusesBeforeRunning(t *testing.T) {
	t.Parallel()
	dir := mkdir(t, "bin", "plugins")
	good := install(t, dir, "good-a")
	changed := install(t, dir, "pidfile-changed")
	if _, err := LockDirs([]string{dir}, ""); err != nil {
		t.Fatal(err)
	}
	if !fileExists(filepath.Join(filepath.Dir(dir), "plugins.lock")) {
		t.Fatal("lock not written beside the directory as plugins.lock")
	}
	// Tamper with one binary (still a runnable ELF: trailing bytes are ignored) and add one.
	f, err := os.OpenFile(changed, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("tampered")
	f.Close()
	added := install(t, dir, "pidfile-added")

	pidFile := filepath.Join(t.TempDir(), "pids")
	cat := discover(t, Options{Dirs: []string{dir}, Env: []string{"LEM_TEST_PID_FILE=" + pidFile}})
	wantSelected(t, cat, "good-a", good)
	if p, _ := cat.Find("good-a"); p.Lock != LockOK {
		t.Errorf("good-a lock status %q, want %q", p.Lock, LockOK)
	}
	for _, tc := range []struct {
		path   string
		status LockStatus
		want   string
	}{
		{changed, LockMismatch, "differs from"},
		{added, LockUnlisted, "not listed in lock file " + DirLockPath(dir)},
	} {
		c := candidate(t, cat, tc.path)
		if c.Available || c.Lock != tc.status || !errors.Is(c.Err, ErrLockMismatch) || !strings.Contains(c.Reason, tc.want) || !strings.Contains(c.Reason, "refused before running") {
			t.Errorf("%s: available=%v lock=%q reason %q; want refused, %q, %q", tc.path, c.Available, c.Lock, c.Reason, tc.status, tc.want)
		}
	}
	if pids := readPids(t, pidFile); len(pids) != 0 {
		t.Errorf("refused binaries ran (pids %v)", pids)
	}
}
