package discovery

import (
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"strings"
	"testing"
)

// fakeTrust answers stat from a table; paths not in it are root-owned 0755 directories.
func fakeTrust(uid int, files map[string]fileOwner) trust {
	return trust{uid: uid, privateGID: -1, stat: func(p string) (fileOwner, error) {
		if fo, ok := files[p]; ok {
			return fo, nil
		}
		return fileOwner{mode: fs.ModeDir | 0o755, uid: 0}, nil
	}}
}

func TestTrustCheckDir(t *testing.T) {
	const me = 1000
	dir := fs.ModeDir
	cases := []struct {
		name  string
		files map[string]fileOwner
		want  []string // substrings of the error; nil means trusted
	}{
		{"all root", nil, nil},
		{"mine under root", map[string]fileOwner{"/home/u": {dir | 0o755, me, 100}, "/home/u/plugins": {dir | 0o700, me, 100}}, nil},
		{"sticky world-writable parent", map[string]fileOwner{"/home/u": {dir | fs.ModeSticky | 0o777, 0, 100}}, nil},
		{"world-writable plugin dir, sticky", map[string]fileOwner{"/home/u/plugins": {dir | fs.ModeSticky | 0o777, me, 100}},
			[]string{"plugin directory /home/u/plugins is world-writable (mode 0777)", "chmod o-w /home/u/plugins"}},
		{"world-writable parent", map[string]fileOwner{"/home": {dir | 0o777, 0, 100}},
			[]string{"directory /home above plugin directory /home/u/plugins is world-writable without the sticky bit (mode 0777)", "chmod o-w /home"}},
		{"group-writable plugin dir", map[string]fileOwner{"/home/u/plugins": {dir | 0o775, me, 100}},
			[]string{"plugin directory /home/u/plugins is group-writable (mode 0775)", "chmod g-w /home/u/plugins"}},
		{"group-writable grandparent", map[string]fileOwner{"/home": {dir | 0o770, 0, 100}},
			[]string{"directory /home above", "group-writable (mode 0770)", "chmod g-w /home"}},
		{"parent owned by another user", map[string]fileOwner{"/home/u": {dir | 0o755, 4242, 100}},
			[]string{"directory /home/u above plugin directory /home/u/plugins is owned by uid 4242", "user running lemctl (uid 1000", "chown "}},
		{"root dir world-writable", map[string]fileOwner{"/": {dir | 0o777, 0, 100}},
			[]string{"directory / above", "chmod o-w /"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := fakeTrust(me, tc.files).checkDir("/home/u/plugins")
			if tc.want == nil {
				if err != nil {
					t.Fatalf("checkDir = %v, want trusted", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("checkDir trusted it, want an error with %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("checkDir = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

// TestTrustUserPrivateGroup: a group-writable directory whose group is the user's own private
// group (umask 002 systems) is trusted; group-writable for any other group is not.
func TestTrustUserPrivateGroup(t *testing.T) {
	tr := fakeTrust(1000, map[string]fileOwner{"/home/u/plugins": {fs.ModeDir | 0o775, 1000, 1000}})
	tr.privateGID = 1000
	if err := tr.checkDir("/home/u/plugins"); err != nil {
		t.Errorf("group-writable, the user's private group: %v, want trusted", err)
	}
	tr.privateGID = -1
	if err := tr.checkDir("/home/u/plugins"); err == nil || !strings.Contains(err.Error(), "group-writable") {
		t.Errorf("group-writable, no private group: %v, want refused", err)
	}
	tr = fakeTrust(1000, map[string]fileOwner{"/home/u/plugins": {fs.ModeDir | 0o775, 1000, 50}})
	tr.privateGID = 1000
	if err := tr.checkDir("/home/u/plugins"); err == nil {
		t.Error("group-writable for another group: trusted, want refused")
	}
}

func TestTrustCheckBinaryOwner(t *testing.T) {
	tr := fakeTrust(1000, nil)
	for _, uid := range []int{0, 1000} {
		if err := tr.checkBinary("/p/lem-plugin-x", uid); err != nil {
			t.Errorf("owner uid %d: %v, want trusted", uid, err)
		}
	}
	err := tr.checkBinary("/p/lem-plugin-x", 4242)
	if err == nil || !strings.Contains(err.Error(), "is owned by uid 4242") || !strings.Contains(err.Error(), "/p/lem-plugin-x") || !strings.Contains(err.Error(), "chown ") {
		t.Errorf("checkBinary(owner 4242) = %v, want a refusal naming the owner and a chown fix", err)
	}
}

// TestPluginOwnedByNobodyIsRefused: a real binary chowned to nobody is refused before it runs,
// with a message naming the owner. Needs root to chown.
func TestPluginOwnedByNobodyIsRefused(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to chown a file to nobody")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody:", err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	t.Parallel()
	dir := mkdir(t, "plugins")
	p := install(t, dir, "pidfile-owned")
	if err := os.Chown(p, uid, -1); err != nil {
		t.Fatal(err)
	}
	pidFile := t.TempDir() + "/pids"
	cat := discover(t, Options{Dirs: []string{dir}, NoCache: true, Env: []string{"LEM_TEST_PID_FILE=" + pidFile}})
	defer cat.Close()
	if _, ok := cat.Find("pidfile-owned"); ok {
		t.Fatal("a plugin owned by nobody is available")
	}
	var reason string
	for _, c := range cat.Candidates {
		if c.Path == p {
			reason = c.Reason
		}
	}
	for _, w := range []string{"is owned by uid " + nobody.Uid + " (nobody)", "chown root " + p} {
		if !strings.Contains(reason, w) {
			t.Errorf("reason %q, want it to contain %q", reason, w)
		}
	}
	if fileExists(pidFile) {
		t.Error("the refused binary ran")
	}
}
