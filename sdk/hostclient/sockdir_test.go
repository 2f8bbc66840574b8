package hostclient

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// A socket directory left by a host that is gone is removed; one whose host lives, one of this
// process and a name that is not a socket directory's stay.
func TestSweepSockDirsRemovesOnlyThoseOfDeadHosts(t *testing.T) {
	dir := t.TempDir()
	// A pid that existed and is gone: a finished child's.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := cmd.Process.Pid
	alive := os.Getppid()     // the test binary's parent outlives the test
	names := map[string]bool{ // name → must remain
		sockDirPrefix + strconv.Itoa(dead) + "-123":        false,
		sockDirPrefix + strconv.Itoa(alive) + "-456":       true,
		sockDirPrefix + strconv.Itoa(os.Getpid()) + "-789": true,
		"lemctl-plugin-notapid-1":                          true,
		"other-" + strconv.Itoa(dead) + "-1":               true,
	}
	for n := range names {
		if err := os.Mkdir(filepath.Join(dir, n), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// A left socket inside the dead host's directory goes with it.
	if err := os.WriteFile(filepath.Join(dir, sockDirPrefix+strconv.Itoa(dead)+"-123", "plugin123"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	sweepSockDirs(dir)
	for n, keep := range names {
		_, err := os.Stat(filepath.Join(dir, n))
		if got := err == nil; got != keep {
			t.Errorf("%s: present %v, want %v", n, got, keep)
		}
	}
}
