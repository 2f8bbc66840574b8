package nvml

import (
	"fmt"
	"io/fs"
	"strconv"
	"strings"
)

// procTree decides whether a process that uses a GPU is "ours": a process is ours when it is one
// of the roots or descends from one. The roots are the plugin's parent (the lemctl worker, or
// `lemctl measure`, whose children are the engine plugins and the measured command), the plugin
// itself, and the configured allowed_pids. Anything else on a measured GPU is foreign.
//
// Process ids come from NVML; a pid that is not in this process's PID namespace (a container
// seeing host pids) cannot be placed and is reported as foreign with that caveat.
type procTree struct {
	fsys  fs.FS // the proc file system root (normally os.DirFS("/proc"))
	roots map[int]bool
}

func newProcTree(fsys fs.FS, roots ...int) *procTree {
	t := &procTree{fsys: fsys, roots: map[int]bool{}}
	for _, r := range roots {
		// PID 1 is everybody's ancestor: it is a root only when named in allowed_pids, which
		// addRoot does not filter. A plugin whose parent is init has lost its host anyway.
		if r > 1 {
			t.roots[r] = true
		}
	}
	return t
}

func (t *procTree) addRoot(pid int) {
	if pid > 0 {
		t.roots[pid] = true
	}
}

// own reports whether pid is a root or descends from one, and whether pid is visible at all.
func (t *procTree) own(pid int) (own, visible bool) {
	cur := pid
	for depth := 0; depth < 256; depth++ {
		if t.roots[cur] {
			return true, true
		}
		ppid, err := t.parent(cur)
		if err != nil {
			return false, depth > 0
		}
		if ppid <= 0 || ppid == cur {
			return false, true
		}
		cur = ppid
	}
	return false, true
}

// parent reads the parent pid from <proc>/<pid>/stat: "pid (comm) state ppid …", where comm
// may itself contain spaces and parentheses, so the fields after the last ')' are used.
func (t *procTree) parent(pid int) (int, error) {
	b, err := fs.ReadFile(t.fsys, strconv.Itoa(pid)+"/stat")
	if err != nil {
		return 0, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("pid %d: malformed stat %q", pid, s)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, fmt.Errorf("pid %d: malformed stat %q", pid, s)
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return 0, fmt.Errorf("pid %d: parent pid %q: %w", pid, f[1], err)
	}
	return ppid, nil
}

// name returns the command name of pid, or "" when it cannot be read.
func (t *procTree) name(pid int) string {
	b, err := fs.ReadFile(t.fsys, strconv.Itoa(pid)+"/comm")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
