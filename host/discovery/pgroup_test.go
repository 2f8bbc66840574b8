package discovery

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/lemctl/lemctl/sdk"
)

// markerEnv returns a KEY=VALUE unique to the test, for the plugin's environment (and so its
// children's).
func markerEnv(t *testing.T) string {
	return fmt.Sprintf("LEM_TEST_MARKER=%s-%d-%d", t.Name(), os.Getpid(), time.Now().UnixNano())
}

// marked lists the pids of live processes (zombies excluded) whose environment holds marker.
func marked(t *testing.T, marker string) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(env, []byte(marker+"\x00")) {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
			if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
				continue
			}
		}
		pids = append(pids, pid)
	}
	return pids
}

// waitUnmarked waits (as a hang guard only) until no live process carries marker.
func waitUnmarked(t *testing.T, marker string) []int {
	t.Helper()
	var left []int
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if left = marked(t, marker); len(left) == 0 {
			return nil
		}
	}
	return left
}

// TestCloseEndsThePluginsChildren: a plugin's child (here a `sleep 300` holding the plugin's
// stdout and stderr) does not outlive the plugin: Close ends the plugin's whole process group.
func TestCloseEndsThePluginsChildren(t *testing.T) {
	t.Parallel()
	dir := mkdir(t, "plugins")
	install(t, dir, "spawn-a")
	marker := markerEnv(t)
	cat := discover(t, Options{Dirs: []string{dir}, NoCache: true, Env: []string{marker}})
	defer cat.Close()
	if _, ok := cat.Find("spawn-a"); !ok {
		t.Fatalf("spawn-a not found: %s", describeProblems(cat))
	}
	if left := waitUnmarked(t, marker); left != nil {
		t.Fatalf("after discovery's probe, processes %v of the plugin are still alive", left)
	}
	c, err := cat.Open(context.Background(), "spawn-a", sdk.KindEnergy)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(marked(t, marker)); n < 2 {
		t.Fatalf("%d processes carry the marker while the plugin runs, want the plugin and its child", n)
	}
	c.Close()
	if left := waitUnmarked(t, marker); left != nil {
		t.Errorf("after Close, processes %v of the plugin are still alive", left)
	}
}

// TestProbeEndsAHungPluginsChildren: a plugin that never completes the handshake, and whose child
// keeps its stdout open, is refused and leaves nothing behind.
func TestProbeEndsAHungPluginsChildren(t *testing.T) {
	t.Parallel()
	dir := mkdir(t, "plugins")
	install(t, dir, "spawnhang-a")
	marker := markerEnv(t)
	done := make(chan *Catalog, 1)
	go func() {
		done <- discover(t, Options{Dirs: []string{dir}, NoCache: true, StartTimeout: 2 * time.Second, Env: []string{marker}})
	}()
	var cat *Catalog
	select {
	case cat = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("discovery did not return: a child holding the plugin's stdout blocked the probe")
	}
	defer cat.Close()
	if _, ok := cat.Find("spawnhang-a"); ok {
		t.Error("a plugin that never completes the handshake is available")
	}
	if left := waitUnmarked(t, marker); left != nil {
		t.Errorf("after the refused probe, processes %v of the plugin are still alive", left)
	}
}

// TestPluginSocketInPrivateDir: the plugin's unix socket lives in a 0700 directory of its own,
// removed when the plugin is closed.
func TestPluginSocketInPrivateDir(t *testing.T) {
	t.Parallel()
	dir := mkdir(t, "plugins")
	install(t, dir, "good-sock")
	cat := discover(t, Options{Dirs: []string{dir}, NoCache: true})
	defer cat.Close()
	c, err := cat.Open(context.Background(), "good-sock", sdk.KindEnergy)
	if err != nil {
		t.Fatal(err)
	}
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", c.Pid()))
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	var sockDir string
	for _, kv := range bytes.Split(env, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("PLUGIN_UNIX_SOCKET_DIR=")); ok {
			sockDir = string(v)
		}
	}
	fi, err := os.Stat(sockDir)
	if sockDir == "" || err != nil {
		c.Close()
		t.Fatalf("plugin's socket directory %q: %v", sockDir, err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("socket directory %s has mode %04o, want 0700", sockDir, fi.Mode().Perm())
	}
	socks, _ := filepath.Glob(filepath.Join(sockDir, "plugin*"))
	if len(socks) == 0 {
		t.Errorf("no socket in %s while the plugin runs", sockDir)
	}
	c.Close()
	if _, err := os.Stat(sockDir); !os.IsNotExist(err) {
		t.Errorf("socket directory %s still there after Close (%v)", sockDir, err)
	}
}
