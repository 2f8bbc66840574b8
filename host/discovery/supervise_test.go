package discovery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lemctl/lemctl/host/config"
	"github.com/lemctl/lemctl/sdk"
)

// helperEnv re-executes the test binary as a host process (TestMain → runHelper).
const helperEnv = "LEM_TEST_DISCOVERY_HELPER"

// runHelper is a lemctl host in miniature: it discovers the plugins of $LEM_TEST_DIR, opens
// good-a and good-b, writes their pids to $LEM_TEST_OPEN_PIDS and waits to be killed.
func runHelper() {
	ctx := context.Background()
	cat, err := Discover(ctx, Options{Dirs: []string{os.Getenv("LEM_TEST_DIR")}, NoCache: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	var pids []string
	for _, name := range []string{"good-a", "good-b"} {
		cl, err := cat.Open(ctx, name, sdk.KindEnergy)
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		pids = append(pids, fmt.Sprint(cl.Pid()))
	}
	if err := writeAtomic(os.Getenv("LEM_TEST_OPEN_PIDS"), []byte(strings.Join(pids, "\n")), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	select {}
}

// TestPluginsDieWithSIGKILLedHost: a host that opened two plugins is SIGKILLed; no plugin
// process may survive it by more than 2 s.
func TestPluginsDieWithSIGKILLedHost(t *testing.T) {
	t.Parallel()
	dir := mkdir(t, "plugins")
	install(t, dir, "good-a")
	install(t, dir, "good-b")
	pidFile := filepath.Join(t.TempDir(), "pids")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1", "LEM_TEST_DIR="+dir, "LEM_TEST_OPEN_PIDS="+pidFile)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(60 * time.Second)
	for !fileExists(pidFile) {
		select {
		case err := <-exited:
			t.Fatalf("helper exited early (%v): %s", err, stderr.String())
		case <-deadline:
			cmd.Process.Kill()
			t.Fatalf("helper never opened its plugins: %s", stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	pids := readPids(t, pidFile)
	if len(pids) != 2 {
		t.Fatalf("want 2 plugin pids, got %v", pids)
	}
	for _, p := range pids {
		if !pidAlive(p) {
			t.Fatalf("plugin pid %d not running before the kill", p)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	if alive := waitGone(pids, 2*time.Second); len(alive) > 0 {
		for _, p := range alive {
			syscall.Kill(p, syscall.SIGKILL)
		}
		t.Fatalf("plugin processes %v survived the SIGKILLed host by 2 s", alive)
	}
}

// TestDiscoveryLeavesNoProcess: every process discovery starts is gone when Discover returns,
// good or bad (a plugin that hangs in its handshake included).
func TestDiscoveryLeavesNoProcess(t *testing.T) {
	t.Parallel()
	dir := mkdir(t, "plugins")
	install(t, dir, "pidfile-a")
	install(t, dir, "pidfile-b")
	install(t, dir, "hang")
	pidFile := filepath.Join(t.TempDir(), "pids")
	cat := discover(t, Options{Dirs: []string{dir}, NoCache: true, StartTimeout: 2 * time.Second, Env: []string{"LEM_TEST_PID_FILE=" + pidFile}})
	if len(cat.Plugins()) != 2 || len(cat.Problems()) != 1 {
		t.Fatalf("want 2 plugins and 1 problem, got %d and %d: %s", len(cat.Plugins()), len(cat.Problems()), describeProblems(cat))
	}
	pids := readPids(t, pidFile)
	if len(pids) != 3 {
		t.Fatalf("want 3 pids (2 good, 1 hanging), got %v", pids)
	}
	if alive := waitGone(pids, 0); len(alive) > 0 {
		t.Fatalf("discovery left plugin processes %v running", alive)
	}
}

func TestCatalogOpen(t *testing.T) {
	t.Parallel()
	dir := mkdir(t, "plugins")
	install(t, dir, "good-a")
	install(t, dir, "good-l")
	install(t, dir, "crash")
	env := specEnv(t, map[string]specEntry{"good-l": {Kinds: []string{"loader", "energy"}}})
	var logs syncBuffer
	cat := discover(t, Options{Dirs: []string{dir}, Env: []string{env, "LEM_PLUGIN_LOG_LEVEL=debug"}, Logger: testLogger(&logs)})
	defer cat.Close()
	ctx := context.Background()

	t.Run("open by kind", func(t *testing.T) {
		cl, err := cat.Open(ctx, "good-l", sdk.KindLoader)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ids, err := cl.Loader().Tokenize(ctx, "", []string{"hi"})
		if err != nil || len(ids) != 1 || len(ids[0]) != 2 {
			t.Fatalf("Tokenize = %v, %v", ids, err)
		}
		pid := cl.Pid()
		cl.Close()
		if alive := waitGone([]int{pid}, 5*time.Second); len(alive) > 0 {
			t.Fatalf("plugin %d still running after Close", pid)
		}
	})
	t.Run("stderr forwarded under the plugin name", func(t *testing.T) {
		cl, err := cat.Open(ctx, "good-a", sdk.KindEnergy)
		if err != nil {
			t.Fatal(err)
		}
		cl.Close()
		if !strings.Contains(logs.String(), "test.good-a:") {
			t.Errorf("no log line named test.good-a in:\n%s", logs.String())
		}
	})
	t.Run("wrong kind is not installed", func(t *testing.T) {
		_, err := cat.Open(ctx, "good-a", sdk.KindEngine)
		var ni *config.PluginNotInstalledError
		if !errors.As(err, &ni) || !errors.Is(err, config.ErrPluginNotInstalled) {
			t.Fatalf("err = %v, want *config.PluginNotInstalledError", err)
		}
		if ni.Plugin != "good-a" || ni.Kind != sdk.KindEngine || !strings.Contains(err.Error(), dir) {
			t.Errorf("err = %v (%+v): want plugin, kind and the searched directory", err, ni)
		}
	})
	t.Run("unknown name lists what is installed", func(t *testing.T) {
		_, err := cat.Open(ctx, "nope", sdk.KindEnergy)
		var ni *config.PluginNotInstalledError
		if !errors.As(err, &ni) {
			t.Fatalf("err = %v, want *config.PluginNotInstalledError", err)
		}
		if strings.Join(ni.Installed, ",") != "good-a,good-l" {
			t.Errorf("Installed = %v, want [good-a good-l]", ni.Installed)
		}
	})
	t.Run("unusable plugin says why", func(t *testing.T) {
		_, err := cat.Open(ctx, "crash", "")
		var ue *UnavailableError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "simulated crash at start") || !strings.Contains(err.Error(), filepath.Join(dir, "lem-plugin-crash")) {
			t.Fatalf("err = %v, want *UnavailableError with the path and cause", err)
		}
	})
	t.Run("configure", func(t *testing.T) {
		tests := []struct {
			name    string
			table   map[string]any
			wantKey string
		}{
			{"defaults", nil, ""},
			{"valid", map[string]any{"level": 5, "flavour": "spicy"}, ""},
			{"out of range", map[string]any{"level": 42}, "level"},
			{"unknown key", map[string]any{"bogus": true}, "bogus"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				errs, err := cat.ConfigurePlugin(ctx, "good-a", sdk.KindEnergy, tc.table)
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case tc.wantKey == "" && len(errs) > 0:
					t.Errorf("unexpected config errors %v", errs)
				case tc.wantKey != "" && (len(errs) != 1 || errs[0].Key != tc.wantKey):
					t.Errorf("config errors %v, want one for %q", errs, tc.wantKey)
				}
			})
		}
		_, err := cat.ConfigurePlugin(ctx, "missing", sdk.KindEnergy, nil)
		if !errors.Is(err, config.ErrPluginNotInstalled) {
			t.Errorf("ConfigurePlugin(missing) = %v, want ErrPluginNotInstalled", err)
		}
	})
	t.Run("session: one process per plugin, one rendering of a rejected table", func(t *testing.T) {
		sess := cat.NewSession()
		defer sess.Close()
		table := map[string]any{"level": 5}
		if errs, err := sess.ConfigurePlugin(ctx, "good-a", sdk.KindEnergy, table); err != nil || len(errs) > 0 {
			t.Fatalf("check: %v %v", errs, err)
		}
		c1, err := sess.Open(ctx, "good-a", sdk.KindEnergy, table)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := sess.Open(ctx, "good-a", sdk.KindEnergy, map[string]any{"level": 5})
		if err != nil || c2.Pid() != c1.Pid() {
			t.Fatalf("second use: %v, pid %d, want the first process %d", err, c2.Pid(), c1.Pid())
		}
		_, err = sess.Open(ctx, "good-a", sdk.KindEnergy, map[string]any{"level": 42})
		var rej *ConfigRejected
		if !errors.As(err, &rej) || rej.Plugin != "good-a" || rej.Kind != sdk.KindEnergy || len(rej.Errors) != 1 || !IsUsage(err) {
			t.Fatalf("bad table: %v, want one *ConfigRejected", err)
		}
		if want := "plugin good-a (energy) rejected its table: " + rej.Errors[0].Error(); err.Error() != want || !strings.HasPrefix(rej.Errors[0].Error(), "level: ") {
			t.Errorf("rendering %q, want %q", err.Error(), want)
		}
		if _, err := sess.Open(ctx, "good-a", sdk.KindEngine, nil); !errors.Is(err, config.ErrPluginNotInstalled) {
			t.Errorf("wrong kind: %v, want ErrPluginNotInstalled", err)
		}
		if _, err := cat.OpenConfigured(ctx, "good-a", sdk.KindEnergy, map[string]any{"bogus": true}); !errors.As(err, &rej) || rej.Errors[0].Key != "bogus" {
			t.Errorf("OpenConfigured with a bad table: %v, want *ConfigRejected naming bogus", err)
		}
		sess.Close()
		if alive := waitGone([]int{c1.Pid()}, 5*time.Second); len(alive) > 0 {
			t.Fatalf("plugin %d still running after Session.Close", c1.Pid())
		}
	})
	t.Run("close kills what is open", func(t *testing.T) {
		cat2 := discover(t, Options{Dirs: []string{dir}})
		cl, err := cat2.Open(ctx, "good-a", sdk.KindEnergy)
		if err != nil {
			t.Fatal(err)
		}
		pid := cl.Pid()
		cat2.Close()
		if alive := waitGone([]int{pid}, 5*time.Second); len(alive) > 0 {
			t.Fatalf("plugin %d still running after Catalog.Close", pid)
		}
		if _, err := cat2.Open(ctx, "good-a", sdk.KindEnergy); err == nil {
			t.Error("Open after Close succeeded")
		}
	})
}

// TestOpenRefusesBinaryChangedAfterDiscovery: with a lock, Open re-hashes; a binary replaced
// between discovery and Open is refused before it runs.
func TestOpenRefusesBinaryChangedAfterDiscovery(t *testing.T) {
	t.Parallel()
	dir := mkdir(t, "plugins")
	p := install(t, dir, "pidfile-a")
	if _, err := LockDirs([]string{dir}, ""); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(t.TempDir(), "pids")
	cat := discover(t, Options{Dirs: []string{dir}, Env: []string{"LEM_TEST_PID_FILE=" + pidFile}})
	defer cat.Close()
	if _, ok := cat.Find("pidfile-a"); !ok {
		t.Fatalf("pidfile-a not found: %s", describeProblems(cat))
	}
	before := len(readPids(t, pidFile))
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("x")
	f.Close()
	_, err = cat.Open(context.Background(), "pidfile-a", sdk.KindEnergy)
	if !errors.Is(err, ErrLockMismatch) || !strings.Contains(err.Error(), p) {
		t.Fatalf("Open = %v, want a lock mismatch naming %s", err, p)
	}
	if after := len(readPids(t, pidFile)); after != before {
		t.Errorf("the changed binary ran (%d starts before Open, %d after)", before, after)
	}
}

// A plugin that dies inside a call (a panic) fails the call with gRPC's bare "EOF" or
// "unavailable"; Explain adds its panic message from its stderr.
func TestExplainPanicInCall(t *testing.T) {
	t.Parallel()
	dir := mkdir(t, "plugins")
	install(t, dir, "panicstart")
	cat := discover(t, Options{Dirs: []string{dir}})
	defer cat.Close()
	sess := cat.NewSession()
	defer sess.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := sess.Open(ctx, "panicstart", sdk.KindEnergy, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, callErr := cl.Meter().Start(ctx, sdk.StartRequest{})
	if callErr == nil {
		t.Fatal("Start on a panicking plugin succeeded")
	}
	got := sess.Explain(cl, callErr)
	if !errors.Is(got, callErr) || !strings.Contains(got.Error(), "panic: badplugin: simulated panic in Start") {
		t.Fatalf("Explain(%v) = %v, want the panic line from the plugin's stderr", callErr, got)
	}
	// An error that is not a dead process is left alone.
	other := errors.New("no domains")
	if got := sess.Explain(cl, other); got != other {
		t.Errorf("Explain(%v) = %v, want it unchanged", other, got)
	}
}
