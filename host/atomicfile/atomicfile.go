// Package atomicfile writes the files lemctl itself writes (worker specs in a run directory,
// the plugin info cache, plugin locks) so that a reader, a crash or a full disk never leaves a torn or empty file under the final name:
// a temporary file in the same directory, write, fsync, rename over the final name, fsync of the
// directory.
//
// It must never leave a partial file under the final name, never replace an existing file with
// anything but the complete new bytes, and never leave its temporary file behind when it reports
// a failure.
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// TempPrefix starts the name of every temporary file Write creates (".tmp-<name>-<random>").
const TempPrefix = ".tmp-"

// Write writes data to path with permissions perm, atomically and durably. On failure (a full
// disk: ENOSPC) the error names the file and path holds what it held before, if anything.
func Write(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, TempPrefix+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(step string, err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %s: %w", path, step, err)
	}
	if _, err := f.Write(data); err != nil {
		return fail("write", err)
	}
	if err := f.Chmod(perm); err != nil {
		return fail("chmod", err)
	}
	if err := f.Sync(); err != nil {
		return fail("fsync", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: close: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: rename: %w", path, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		// Some file systems do not support fsync on directories (EINVAL): not a failure.
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}
