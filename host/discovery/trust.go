package discovery

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// fileOwner is what the trust checks need to know about a file: its mode and its owner.
type fileOwner struct {
	mode fs.FileMode
	uid  int
	gid  int
}

// trust decides, like ssh's StrictModes, whether a plugin binary may be executed: the binary and
// every directory from its plugin directory up to / must be owned by root or by the user running
// lemctl, and none of those directories may be writable by another user (group- or
// world-writable) unless sticky; the plugin directory itself must not be world-writable even when
// sticky. One exception to group-writable: a directory whose group is the user's own private
// group (the user's primary group, named as the user: the convention of systems whose umask is
// 002), since no other user is in it. stat is the seam tests use to inject file info (CI runs
// as root).
type trust struct {
	stat func(path string) (fileOwner, error)
	uid  int
	// privateGID is the user's primary group when it is named as the user, else -1.
	privateGID int
}

// osTrust checks the real file system as the current user.
func osTrust() trust {
	return trust{uid: os.Getuid(), privateGID: privateGroup(), stat: func(p string) (fileOwner, error) {
		fi, err := os.Stat(p)
		if err != nil {
			return fileOwner{}, err
		}
		fo := fileOwner{mode: fi.Mode(), uid: -1, gid: -1}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			fo.uid, fo.gid = int(st.Uid), int(st.Gid)
		}
		return fo, nil
	}}
}

// privateGroup is the current user's primary group when it is named as the user (a user-private
// group), else -1.
func privateGroup() int {
	u, err := user.Current()
	if err != nil {
		return -1
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil || g.Name != u.Username {
		return -1
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return -1
	}
	return gid
}

// ownerName renders uid as "uid N (name)", or "uid N" when it has no name.
func ownerName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Sprintf("uid %d (%s)", uid, u.Username)
	}
	return fmt.Sprintf("uid %d", uid)
}

// trustedOwner says whether uid may own a plugin binary or a directory above one.
func (tr trust) trustedOwner(uid int) bool { return uid == 0 || uid == tr.uid }

// chownFix is the chown command that makes path trusted.
func (tr trust) chownFix(path string) string {
	if u, err := user.LookupId(strconv.Itoa(tr.uid)); err == nil && tr.uid != 0 {
		return fmt.Sprintf("chown %s %s", u.Username, path)
	}
	return "chown root " + path
}

// checkBinary checks the owner of a plugin binary (its mode is checked by evaluate).
func (tr trust) checkBinary(path string, uid int) error {
	if tr.trustedOwner(uid) {
		return nil
	}
	return fmt.Errorf("is owned by %s, not by root or the user running lemctl (%s), so that user could replace it; refused. Fix: %s (or remove it)", ownerName(uid), ownerName(tr.uid), tr.chownFix(path))
}

// checkDir checks the plugin directory dir and every directory above it, up to /. The error
// names the first directory at fault, its mode or owner, and the command that fixes it.
func (tr trust) checkDir(dir string) error {
	dir = filepath.Clean(dir)
	for p, first := dir, true; ; p, first = filepath.Dir(p), false {
		fo, err := tr.stat(p)
		if err != nil {
			return fmt.Errorf("cannot check directory %s above plugin directory %s: %w", p, dir, err)
		}
		what := "directory " + p + " above plugin directory " + dir
		if first {
			what = "plugin directory " + dir
		}
		perm := fo.mode.Perm()
		switch {
		case first && perm&0o002 != 0:
			return fmt.Errorf("plugin directory %s is world-writable (mode %04o), so anyone could replace its plugins; refused. Fix: chmod o-w %s", dir, perm, dir)
		case perm&0o002 != 0 && fo.mode&fs.ModeSticky == 0:
			return fmt.Errorf("%s is world-writable without the sticky bit (mode %04o), so anyone could replace its plugins; refused. Fix: chmod o-w %s (or chmod +t %s)", what, perm, p, p)
		case perm&0o020 != 0 && fo.mode&fs.ModeSticky == 0 && !(tr.privateGID >= 0 && fo.gid == tr.privateGID):
			return fmt.Errorf("%s is group-writable (mode %04o), so other users could replace its plugins; refused. Fix: chmod g-w %s", what, perm, p)
		case fo.uid >= 0 && !tr.trustedOwner(fo.uid):
			return fmt.Errorf("%s is owned by %s, not by root or the user running lemctl (%s), so that user could replace its plugins; refused. Fix: %s", what, ownerName(fo.uid), ownerName(tr.uid), tr.chownFix(p))
		}
		if parent := filepath.Dir(p); parent == p {
			return nil
		}
	}
}
