package hostclient

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// sockDirPrefix starts the name of every plugin socket directory: lemctl-plugin-<host pid>-<random>.
const sockDirPrefix = "lemctl-plugin-"

// sweepOnce removes, once per host process, the socket directories that hosts which died without
// closing their plugins (SIGKILL, a crash) left behind.
var sweepOnce sync.Once

// newSockDir creates the private (0700) directory of one plugin's unix socket, after sweeping
// the stale ones once.
func newSockDir() (string, error) {
	sweepOnce.Do(func() { sweepSockDirs(os.TempDir()) })
	return os.MkdirTemp("", sockDirPrefix+strconv.Itoa(os.Getpid())+"-")
}

// sweepSockDirs removes the socket directories in dir whose host process is gone: named
// lemctl-plugin-<pid>-…, owned by this user, and <pid> no longer exists. A directory whose pid
// is alive (the host still runs, or the pid was reused) is left alone, as is anything it cannot
// read: the sweep never fails a plugin start.
func sweepSockDirs(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	uid := os.Getuid()
	for _, e := range entries {
		pid, ok := sockDirPID(e.Name())
		if !ok || !e.IsDir() || pid == os.Getpid() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		if st, ok := info.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != uid {
			continue
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			continue
		}
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

// sockDirPID returns the host pid in a socket directory's name.
func sockDirPID(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, sockDirPrefix)
	if !ok {
		return 0, false
	}
	digits, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(digits)
	return pid, err == nil && pid > 0
}
