package discovery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// badpluginBin is the test plugin binary (internal/badplugin), built once by TestMain.
var badpluginBin string

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		runHelper()
		return
	}
	dir, err := os.MkdirTemp("", "discovery-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	badpluginBin = filepath.Join(dir, "badplugin")
	cmd := exec.Command("go", "build", "-o", badpluginBin, "./internal/badplugin")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build the test plugin:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// install copies the test plugin into dir as lem-plugin-<name>.
func install(t testing.TB, dir, name string) string {
	t.Helper()
	dst := filepath.Join(dir, FilePrefix+name)
	copyFile(t, badpluginBin, dst, 0o755)
	return dst
}

func copyFile(t testing.TB, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, mode); err != nil {
		t.Fatal(err)
	}
}

// mkdir makes a private directory under t.TempDir().
func mkdir(t testing.TB, parts ...string) string {
	t.Helper()
	d := filepath.Join(append([]string{t.TempDir()}, parts...)...)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

type specEntry struct {
	Mode    string   `json:"mode,omitempty"`
	Name    string   `json:"name,omitempty"`
	Version string   `json:"version,omitempty"`
	Kinds   []string `json:"kinds,omitempty"`
}

// specEnv writes the test plugin's spec file and returns the environment entry naming it.
func specEnv(t testing.TB, spec map[string]specEntry) string {
	t.Helper()
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "spec.json")
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return "LEM_TEST_PLUGIN_SPEC=" + p
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testLogger(w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "test", Level: hclog.Debug, Output: w})
}

// discover runs Discover with a private cache and a short start timeout.
func discover(t testing.TB, opts Options) *Catalog {
	t.Helper()
	if opts.CacheDir == "" && !opts.NoCache {
		opts.CacheDir = t.TempDir()
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(io.Discard)
	}
	cat, err := Discover(context.Background(), opts)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	return cat
}

func candidate(t testing.TB, cat *Catalog, path string) *Plugin {
	t.Helper()
	for _, c := range cat.Candidates {
		if c.Path == path {
			return c
		}
	}
	var have []string
	for _, c := range cat.Candidates {
		have = append(have, c.Path)
	}
	t.Fatalf("no candidate %s; have %v", path, have)
	return nil
}

// wantSelected fails unless the named plugin is selected, available and from path.
func wantSelected(t testing.TB, cat *Catalog, name, path string) {
	t.Helper()
	p, ok := cat.Find(name)
	if !ok {
		t.Fatalf("plugin %q not selected; problems: %s", name, describeProblems(cat))
	}
	if !p.Available || p.Path != path {
		t.Fatalf("plugin %q: available=%v path=%s, want available from %s", name, p.Available, p.Path, path)
	}
}

func describeProblems(cat *Catalog) string {
	var b strings.Builder
	for _, p := range cat.Problems() {
		fmt.Fprintf(&b, "\n  %s: %s", p.Path, p.Reason)
	}
	return b.String()
}

// pidAlive reports whether pid runs (a zombie does not run: it is only waiting to be reaped).
func pidAlive(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	return s[i+2] != 'Z' && s[i+2] != 'X'
}

// waitGone waits up to d for every pid to stop running and returns those still running.
func waitGone(pids []int, d time.Duration) []int {
	deadline := time.Now().Add(d)
	for {
		var alive []int
		for _, p := range pids {
			if pidAlive(p) {
				alive = append(alive, p)
			}
		}
		if len(alive) == 0 || time.Now().After(deadline) {
			return alive
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readPids(t testing.TB, path string) []int {
	t.Helper()
	raw, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range strings.Fields(string(raw)) {
		var p int
		if _, err := fmt.Sscan(f, &p); err != nil {
			t.Fatalf("pid file %s: %v", path, err)
		}
		pids = append(pids, p)
	}
	return pids
}
