package discovery

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// lockFormat is the version of the lock file layout.
const lockFormat = 1

// LockFile is the content of a plugins.lock: the sha256 of every plugin binary it pins. Paths are
// relative to the lock file's directory when the binary lies below it (so a bin/ tree can move
// as a whole), else absolute.
type LockFile struct {
	Format  int         `json:"format"`
	Comment string      `json:"comment,omitempty"`
	Plugins []LockEntry `json:"plugins"`
}

// LockEntry pins one binary.
type LockEntry struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// Lock is a parsed lock file: which binaries (by absolute path) it pins to which hash.
type Lock struct {
	File    string
	entries map[string]string // absolute, cleaned path → sha256 hex
}

// DirLockPath is where `lemctl plugins lock` writes the lock of dir and where discovery looks
// for it: beside the directory, named after it (bin/plugins → bin/plugins.lock).
func DirLockPath(dir string) string {
	return filepath.Clean(dir) + ".lock"
}

// ReadLock reads and checks the lock file at path.
func ReadLock(path string) (*Lock, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read lock file %s: %w", path, err)
	}
	var lf LockFile
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&lf); err != nil {
		return nil, fmt.Errorf("lock file %s is not valid: %w", path, err)
	}
	if lf.Format != lockFormat {
		return nil, fmt.Errorf("lock file %s has format %d; this lemctl reads format %d", path, lf.Format, lockFormat)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("lock file %s: %w", path, err)
	}
	l := &Lock{File: abs, entries: map[string]string{}}
	base := filepath.Dir(abs)
	for i, e := range lf.Plugins {
		sum, err := hex.DecodeString(e.SHA256)
		if err != nil || len(sum) != sha256.Size || e.Path == "" {
			return nil, fmt.Errorf("lock file %s: entry %d (%q): needs a path and a 64-digit hex sha256", path, i, e.Name)
		}
		p := e.Path
		if !filepath.IsAbs(p) {
			p = filepath.Join(base, p)
		}
		l.entries[filepath.Clean(p)] = strings.ToLower(e.SHA256)
	}
	return l, nil
}

// Sum returns the pinned sha256 of the binary at the absolute path, and whether it is pinned.
func (l *Lock) Sum(path string) (string, bool) {
	s, ok := l.entries[filepath.Clean(path)]
	return s, ok
}

// Len is the number of pinned binaries.
func (l *Lock) Len() int { return len(l.entries) }

// WriteLock writes a lock file pinning entries (absolute paths) to path, atomically.
func WriteLock(path string, entries []LockEntry) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("lock file %s: %w", path, err)
	}
	base := filepath.Dir(abs)
	lf := LockFile{Format: lockFormat, Comment: "written by `lemctl plugins lock`; lemctl refuses to run a listed plugin whose sha256 differs, or an unlisted one from a locked directory"}
	for _, e := range entries {
		if rel, err := filepath.Rel(base, e.Path); err == nil && !strings.HasPrefix(rel, "..") {
			e.Path = rel
		}
		lf.Plugins = append(lf.Plugins, e)
	}
	sort.Slice(lf.Plugins, func(i, j int) bool { return lf.Plugins[i].Path < lf.Plugins[j].Path })
	raw, err := json.MarshalIndent(lf, "", "  ")
	if err != nil {
		return fmt.Errorf("encode lock file: %w", err)
	}
	return writeAtomic(abs, append(raw, '\n'), 0o644)
}

// fileSHA256 returns the hex sha256 of the file at path.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ErrLockMismatch is matched (errors.Is) by the error for a binary whose sha256 differs from its
// lock entry or that a lock applies to but does not list.
var ErrLockMismatch = errors.New("plugin binary does not match the lock file")

// Locked is what LockDirs wrote into one lock file.
type Locked struct {
	File    string
	Entries []LockEntry
	// Skipped names the lem-plugin-* files not pinned, each with the reason.
	Skipped []string
}

// LockDirs pins every plugin binary in dirs: it hashes each valid lem-plugin-<name> executable
// (without running it) and writes DirLockPath(dir) for each directory, or one lock at lockFile
// for all of them when lockFile is set. A world-writable directory is refused: pinning what
// anyone can replace pins nothing.
func LockDirs(dirs []string, lockFile string) ([]Locked, error) {
	var out []Locked
	var all Locked
	for _, dir := range dirs {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", dir, err)
		}
		fi, err := os.Stat(abs)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", dir, err)
		}
		if fi.Mode().Perm()&0o002 != 0 {
			return nil, fmt.Errorf("lock %s: the directory is world-writable (mode %04o), so anyone could replace its plugins. Fix: chmod o-w %s", abs, fi.Mode().Perm(), abs)
		}
		entries, err := os.ReadDir(abs)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", dir, err)
		}
		var l Locked
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), FilePrefix) {
				continue
			}
			p := filepath.Join(abs, e.Name())
			name := strings.TrimPrefix(e.Name(), FilePrefix)
			fi, err := os.Stat(p)
			switch {
			case !validName.MatchString(name):
				l.Skipped = append(l.Skipped, p+": invalid plugin name")
				continue
			case err != nil:
				l.Skipped = append(l.Skipped, fmt.Sprintf("%s: %v", p, err))
				continue
			case !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0:
				l.Skipped = append(l.Skipped, p+": not an executable file")
				continue
			}
			sum, err := fileSHA256(p)
			if err != nil {
				return nil, fmt.Errorf("lock %s: %w", p, err)
			}
			l.Entries = append(l.Entries, LockEntry{Name: name, Path: p, SHA256: sum})
		}
		if lockFile != "" {
			all.Entries = append(all.Entries, l.Entries...)
			all.Skipped = append(all.Skipped, l.Skipped...)
			continue
		}
		l.File = DirLockPath(abs)
		if err := WriteLock(l.File, l.Entries); err != nil {
			return nil, fmt.Errorf("lock %s: %w", abs, err)
		}
		out = append(out, l)
	}
	if lockFile != "" {
		abs, err := filepath.Abs(lockFile)
		if err != nil {
			return nil, fmt.Errorf("lock file %s: %w", lockFile, err)
		}
		all.File = abs
		if err := WriteLock(abs, all.Entries); err != nil {
			return nil, err
		}
		out = append(out, all)
	}
	return out, nil
}
