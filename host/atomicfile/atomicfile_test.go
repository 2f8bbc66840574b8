package atomicfile

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

func TestWriteReplacesWholly(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "worker_0.spec.json")
	if err := Write(path, []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("second, longer"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	info, _ := os.Stat(path)
	if err != nil || string(b) != "second, longer" || info.Mode().Perm() != 0o600 {
		t.Errorf("file = %q (%v), mode %v", b, err, info.Mode())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory holds %v, want the file alone", ents)
	}
	if err := Write(filepath.Join(dir, "no", "such", "dir"), nil, 0o600); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}

// TestWriteOnAFullDisk (root): on a 64 KiB tmpfs, writing 256 KiB fails with ENOSPC naming the
// file, leaves the previous content intact and no temporary file.
func TestWriteOnAFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	path := filepath.Join(dir, "worker_1.spec.json")
	if err := Write(path, []byte(`{"rank":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Write(path, bytes.Repeat([]byte("x"), 256<<10), 0o600)
	if !errors.Is(err, syscall.ENOSPC) || !bytes.Contains([]byte(err.Error()), []byte(path)) {
		t.Fatalf("Write on a full disk = %v, want ENOSPC naming %s", err, path)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != `{"rank":1}` {
		t.Errorf("after the failure the file holds %d bytes (%v), want the previous 10", len(b), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary file left behind: %v", ents)
	}
	// A new file that does not fit is not created at all (no 0-byte file).
	fresh := filepath.Join(dir, "worker_2.spec.json")
	if err := Write(fresh, bytes.Repeat([]byte("x"), 256<<10), 0o600); err == nil {
		t.Fatal("a 256 KiB file fit on a 64 KiB tmpfs")
	}
	if _, err := os.Stat(fresh); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed write left %s: %v", fresh, err)
	}
}
