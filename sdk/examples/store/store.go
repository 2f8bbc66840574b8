package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lemctl/lemctl/sdk"
)

// The plugin's identity. The Makefile builds this directory as lem-plugin-example-store.
const (
	pluginName    = "example-store"
	pluginVersion = "0.1.0"
)

const keyPath = "path"

// defaultPath is where results go when the plugin is not configured: relative to the working
// directory the host starts the plugin in.
const defaultPath = "results-example"

// Layout under the root:
//
//	<experiment>/raw/rank-<n>.json       raw result of rank n
//	<experiment>/raw/rank-<n>.done.json  its completion marker
//	<experiment>/aggregated.json
//	<experiment>/manifest.json
const (
	rawDir         = "raw"
	aggregatedFile = "aggregated.json"
	manifestFile   = "manifest.json"
	tempPrefix     = ".tmp-"
)

func schema() []sdk.ConfigKey {
	return []sdk.ConfigKey{
		{Key: keyPath, Type: sdk.TypeString, Default: defaultPath,
			Doc: "directory the results are stored in (created when needed); a relative path is relative to the working directory of lemctl"},
	}
}

// store is the example repository.
type store struct {
	mu   sync.Mutex
	root string
}

// newPlugin is the plugin factory main serves.
func newPlugin() *sdk.Plugin {
	s := &store{root: defaultPath}
	return &sdk.Plugin{
		Name:        pluginName,
		Version:     pluginVersion,
		Description: "example repository: results as files under one directory, atomic writes",
		Schema:      schema(),
		Configure:   s.configure,
		Repository:  s,
	}
}

func (s *store) configure(_ context.Context, cfg sdk.Config) ([]sdk.ConfigError, error) {
	p := cfg.String(keyPath)
	if strings.TrimSpace(p) == "" {
		return []sdk.ConfigError{{Key: keyPath, Message: "empty path", Valid: "a directory path"}}, nil
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", p, err)
	}
	if st, err := os.Stat(abs); err == nil && !st.IsDir() {
		return []sdk.ConfigError{{Key: keyPath, Message: abs + " exists and is not a directory", Valid: "a directory path"}}, nil
	}
	s.mu.Lock()
	s.root = abs
	s.mu.Unlock()
	return nil, nil
}

// idRE is what an experiment id may look like: one path element, no leading dot (temp files
// and "..").
var idRE = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$`)

// dir returns the directory of experiment id after checking the id.
func (s *store) dir(id string) (string, error) {
	if !idRE.MatchString(id) || strings.Contains(id, "..") {
		return "", fmt.Errorf("experiment id %q: want 1–200 letters, digits, '.', '_' or '-', not starting with '.' and without '..': %w", id, sdk.ErrInvalidArgument)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return filepath.Join(s.root, id), nil
}

// rankPaths returns the raw result and marker paths of a rank.
func (s *store) rankPaths(id string, rank int) (raw, marker string, err error) {
	d, err := s.dir(id)
	if err != nil {
		return "", "", err
	}
	if rank < 0 {
		return "", "", fmt.Errorf("rank %d is negative: %w", rank, sdk.ErrInvalidArgument)
	}
	base := filepath.Join(d, rawDir, "rank-"+strconv.Itoa(rank))
	return base + ".json", base + ".done.json", nil
}

// SaveRaw stores one rank's raw result; an existing one is never replaced.
func (s *store) SaveRaw(_ context.Context, id string, rank int, data []byte) (*sdk.Stored, error) {
	raw, _, err := s.rankPaths(id, rank)
	if err != nil {
		return nil, err
	}
	st, err := writeAtomic(raw, data, false)
	if err != nil {
		return nil, fmt.Errorf("save raw result of %s rank %d: %w", id, rank, err)
	}
	return st, nil
}

// markerFile is the JSON of a completion marker.
type markerFile struct {
	Rank       int    `json:"rank"`
	SHA256     string `json:"sha256"`
	Path       string `json:"path"`
	TimeUnixNS int64  `json:"time_unix_ns"`
}

// MarkComplete writes a rank's completion marker after checking sum against the stored bytes.
func (s *store) MarkComplete(_ context.Context, id string, rank int, sum string) (*sdk.Marker, error) {
	raw, marker, err := s.rankPaths(id, rank)
	if err != nil {
		return nil, err
	}
	if !sumRE.MatchString(sum) {
		return nil, fmt.Errorf("mark %s rank %d complete: sha256 %q is not 64 hex digits: %w", id, rank, sum, sdk.ErrInvalidArgument)
	}
	data, err := readFile(raw)
	if err != nil {
		return nil, fmt.Errorf("mark %s rank %d complete: %w", id, rank, err)
	}
	if have := sha256Hex(data); have != strings.ToLower(sum) {
		return nil, fmt.Errorf("mark %s rank %d complete: sha256 %s does not match the stored %d bytes (sha256 %s): %w",
			id, rank, sum, len(data), have, sdk.ErrFailedPrecondition)
	}
	m := markerFile{Rank: rank, SHA256: sha256Hex(data), Path: raw, TimeUnixNS: time.Now().UnixNano()}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode marker: %w", err)
	}
	if _, err := writeAtomic(marker, b, true); err != nil {
		return nil, fmt.Errorf("mark %s rank %d complete: %w", id, rank, err)
	}
	return &sdk.Marker{Rank: m.Rank, SHA256: m.SHA256, Path: m.Path, TimeUnixNS: m.TimeUnixNS}, nil
}

// ListRaw lists the raw results of an experiment, by rank, with their markers.
func (s *store) ListRaw(_ context.Context, id string) ([]sdk.RawEntry, error) {
	d, err := s.dir(id)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(d); err != nil {
		return nil, fmt.Errorf("list raw results of %s: %w", id, notFound(err))
	}
	ranks, done, err := scanRanks(filepath.Join(d, rawDir))
	if err != nil {
		return nil, fmt.Errorf("list raw results of %s: %w", id, err)
	}
	out := make([]sdk.RawEntry, 0, len(ranks))
	for _, r := range ranks {
		raw, marker, _ := s.rankPaths(id, r)
		data, err := readFile(raw)
		if err != nil {
			return nil, fmt.Errorf("list raw results of %s: %w", id, err)
		}
		e := sdk.RawEntry{Rank: r, Size: int64(len(data)), SHA256: sha256Hex(data)}
		if done[r] {
			var m markerFile
			b, err := readFile(marker)
			if err == nil {
				err = json.Unmarshal(b, &m)
			}
			if err != nil {
				return nil, fmt.Errorf("list raw results of %s: marker of rank %d: %w", id, r, err)
			}
			e.Marker = &sdk.Marker{Rank: m.Rank, SHA256: m.SHA256, Path: m.Path, TimeUnixNS: m.TimeUnixNS}
		}
		out = append(out, e)
	}
	return out, nil
}

// LoadRaw returns the exact bytes of a rank's raw result.
func (s *store) LoadRaw(_ context.Context, id string, rank int) ([]byte, error) {
	raw, _, err := s.rankPaths(id, rank)
	if err != nil {
		return nil, err
	}
	b, err := readFile(raw)
	if err != nil {
		return nil, fmt.Errorf("load raw result of %s rank %d: %w", id, rank, err)
	}
	return b, nil
}

// SaveAggregated stores the aggregate, replacing an existing one only when overwrite.
func (s *store) SaveAggregated(_ context.Context, id string, data []byte, overwrite bool) (*sdk.Stored, error) {
	return s.save(id, aggregatedFile, data, overwrite)
}

// LoadAggregated returns the aggregate.
func (s *store) LoadAggregated(_ context.Context, id string) ([]byte, error) {
	return s.load(id, aggregatedFile)
}

// SaveManifest stores the run manifest, replacing the previous one.
func (s *store) SaveManifest(_ context.Context, id string, data []byte) (*sdk.Stored, error) {
	return s.save(id, manifestFile, data, true)
}

// LoadManifest returns the run manifest.
func (s *store) LoadManifest(_ context.Context, id string) ([]byte, error) {
	return s.load(id, manifestFile)
}

func (s *store) save(id, name string, data []byte, replace bool) (*sdk.Stored, error) {
	d, err := s.dir(id)
	if err != nil {
		return nil, err
	}
	st, err := writeAtomic(filepath.Join(d, name), data, replace)
	if err != nil {
		return nil, fmt.Errorf("save %s of %s: %w", name, id, err)
	}
	return st, nil
}

func (s *store) load(id, name string) ([]byte, error) {
	d, err := s.dir(id)
	if err != nil {
		return nil, err
	}
	b, err := readFile(filepath.Join(d, name))
	if err != nil {
		return nil, fmt.Errorf("load %s of %s: %w", name, id, err)
	}
	return b, nil
}

// List summarises every experiment under the root (none when the root does not exist yet).
func (s *store) List(context.Context) ([]sdk.Experiment, error) {
	s.mu.Lock()
	root := s.root
	s.mu.Unlock()
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", root, err)
	}
	var out []sdk.Experiment
	for _, e := range entries {
		if !e.IsDir() || !idRE.MatchString(e.Name()) {
			continue
		}
		d := filepath.Join(root, e.Name())
		ex := sdk.Experiment{ID: e.Name()}
		ranks, done, err := scanRanks(filepath.Join(d, rawDir))
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", e.Name(), err)
		}
		ex.RawRanks = ranks
		for _, r := range ranks {
			if done[r] {
				ex.CompletedRanks = append(ex.CompletedRanks, r)
			}
		}
		ex.Aggregated = exists(filepath.Join(d, aggregatedFile))
		ex.Manifest = exists(filepath.Join(d, manifestFile))
		ex.ModifiedUnixNS = newest(d)
		out = append(out, ex)
	}
	return out, nil
}

var sumRE = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

var rankFileRE = regexp.MustCompile(`^rank-(0|[1-9][0-9]*)(\.done)?\.json$`)

// scanRanks lists the ranks with a raw result in dir, sorted, and which of them have a marker.
// A missing directory has none.
func scanRanks(dir string) ([]int, map[int]bool, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var ranks []int
	done := map[int]bool{}
	for _, e := range entries {
		m := rankFileRE.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		r, err := strconv.Atoi(m[1])
		if err != nil {
			continue // beyond int: not a file this store wrote
		}
		if m[2] != "" {
			done[r] = true
		} else {
			ranks = append(ranks, r)
		}
	}
	sort.Ints(ranks)
	return ranks, done, nil
}

// writeAtomic writes data to path so that a reader sees the old file or the new one, never a
// torn one: a temp file in the same directory, fsync, then rename over path (replace) or a hard
// link to path, which fails when path exists (!replace, ErrAlreadyExists). The directory is
// fsynced so that the new name survives a crash.
func writeAtomic(path string, data []byte, replace bool) (*sdk.Stored, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, tempPrefix+filepath.Base(path)+"-*")
	if err != nil {
		return nil, err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a rename or link this removes nothing or the spare name
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("close %s: %w", tmp, err)
	}
	if replace {
		err = os.Rename(tmp, path)
	} else if err = os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%s exists: %w", path, sdk.ErrAlreadyExists)
	}
	if err != nil {
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	return &sdk.Stored{Path: path, Size: int64(len(data)), SHA256: sha256Hex(data)}, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// readFile reads a file; a missing one is ErrNotFound.
func readFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, notFound(err)
	}
	return b, nil
}

// notFound adds sdk.ErrNotFound to a does-not-exist error so that it crosses the RPC as such.
func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", err, sdk.ErrNotFound)
	}
	return err
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// newest returns the latest modification time of anything under dir, in Unix nanoseconds.
func newest(dir string) int64 {
	var t int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if info, err := d.Info(); err == nil {
			t = max(t, info.ModTime().UnixNano())
		}
		return nil
	})
	return t
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
