package discovery

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReadLock(t *testing.T) {
	dir := t.TempDir()
	sum := strings.Repeat("ab", 32)
	tests := []struct {
		name    string
		content string
		wantErr string
		pinned  map[string]string // path relative to dir → sum
	}{
		{
			name:    "relative and absolute paths",
			content: `{"format":1,"plugins":[{"name":"a","path":"plugins/lem-plugin-a","sha256":"` + sum + `"},{"name":"b","path":"/opt/lem-plugin-b","sha256":"` + strings.ToUpper(sum) + `"}]}`,
			pinned:  map[string]string{"plugins/lem-plugin-a": sum, "/opt/lem-plugin-b": sum},
		},
		{name: "not JSON", content: `{`, wantErr: "is not valid"},
		{name: "unknown field", content: `{"format":1,"plugins":[],"extra":1}`, wantErr: "is not valid"},
		{name: "other format", content: `{"format":2,"plugins":[]}`, wantErr: "has format 2"},
		{name: "short sha256", content: `{"format":1,"plugins":[{"name":"a","path":"x","sha256":"abcd"}]}`, wantErr: "64-digit hex sha256"},
		{name: "missing path", content: `{"format":1,"plugins":[{"name":"a","sha256":"` + sum + `"}]}`, wantErr: "needs a path"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.Repeat("x", i+1)+".lock")
			if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			l, err := ReadLock(p)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), p) {
					t.Fatalf("err = %v, want %q naming %s", err, tc.wantErr, p)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.Len() != len(tc.pinned) {
				t.Fatalf("%d entries, want %d", l.Len(), len(tc.pinned))
			}
			for rel, want := range tc.pinned {
				abs := rel
				if !filepath.IsAbs(rel) {
					abs = filepath.Join(dir, rel)
				}
				if got, ok := l.Sum(abs); !ok || got != want {
					t.Errorf("Sum(%s) = %q, %v; want %q", abs, got, ok, want)
				}
			}
		})
	}
	if _, err := ReadLock(filepath.Join(dir, "missing.lock")); err == nil {
		t.Error("missing lock file read without error")
	}
}

func TestWriteLockRoundTrip(t *testing.T) {
	dir := t.TempDir()
	sum := strings.Repeat("0f", 32)
	inside := filepath.Join(dir, "plugins", "lem-plugin-a")
	outside := "/elsewhere/lem-plugin-b"
	lockPath := filepath.Join(dir, "plugins.lock")
	if err := WriteLock(lockPath, []LockEntry{{Name: "b", Path: outside, SHA256: sum}, {Name: "a", Path: inside, SHA256: sum}}); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(lockPath)
	if !strings.Contains(string(raw), `"path": "plugins/lem-plugin-a"`) || !strings.Contains(string(raw), `"path": "/elsewhere/lem-plugin-b"`) {
		t.Fatalf("lock file paths:\n%s", raw)
	}
	l, err := ReadLock(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{inside, outside} {
		if got, ok := l.Sum(p); !ok || got != sum {
			t.Errorf("Sum(%s) = %q, %v", p, got, ok)
		}
	}
}

// TestUnreadableLockRefusesDirectory: a lock that exists but cannot be parsed fails closed.
func TestUnreadableLockRefusesDirectory(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	locked := filepath.Join(root, "locked")
	free := filepath.Join(root, "free")
	for _, d := range []string{locked, free} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bad := install(t, locked, "good-a")
	good := install(t, free, "good-b")
	if err := os.WriteFile(DirLockPath(locked), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	cat := discover(t, Options{Dirs: []string{locked, free}})
	wantSelected(t, cat, "good-b", good)
	if c := candidate(t, cat, bad); c.Available || !strings.Contains(c.Reason, "lock file "+DirLockPath(locked)+" applies to "+locked+" but cannot be used") {
		t.Errorf("reason %q", c.Reason)
	}
}

func TestExplainStart(t *testing.T) {
	tail := &tailBuffer{max: 2}
	for _, l := range []string{"one", "two", "three"} {
		tail.add(l)
	}
	tests := []struct {
		err  string
		want string
	}{
		{"timeout while waiting for plugin to start", "never completed the plugin handshake within the start timeout (1.5s)"},
		{"plugin exited before we could connect", "exited before completing the plugin handshake (crashed at start?); its stderr ended with: two | three"},
		{"Unrecognized remote plugin message: \nFailed to read any lines from plugin's stdout", "exited before completing"},
		{"Unrecognized remote plugin message: hello world\nThis usually means…", `wrote to stdout before serving (first line "hello world")`},
		{"incompatible API version with plugin. Plugin version: 42, Client versions: [1]", "no common API version (plugin speaks [42], lemctl speaks [1])"},
		{"checksums did not match", "the binary changed while it was being started"},
		{"fork/exec /x/lem-plugin-y: exec format error", "cannot be executed"},
		{"something new", "failed to start: something new; its stderr ended with: two | three"},
	}
	for _, tc := range tests {
		t.Run(tc.err, func(t *testing.T) {
			got := explainStart(errors.New(tc.err), 1500*time.Millisecond, tail).Error()
			if !strings.Contains(got, tc.want) {
				t.Errorf("explainStart(%q) = %q, want it to contain %q", tc.err, got, tc.want)
			}
		})
	}
}
