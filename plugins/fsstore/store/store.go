package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lemctl/lemctl/sdk"
)

// Layout of a results root.
const (
	rawDir        = "raw"
	aggregatedDir = "aggregated"
	runsDir       = "runs"
	rawPrefix     = "process_"
	rawSuffix     = ".json"
	markerPrefix  = ".completed_"
	manifestName  = "manifest.json"
	tempPrefix    = ".tmp-"
	maxIDLen      = 200
)

// Store is a sdk.Repository on a directory tree. It is safe for concurrent use by goroutines and
// by processes sharing the tree.
type Store struct {
	mu   sync.RWMutex
	root string
}

var (
	_ sdk.Repository  = (*Store)(nil)
	_ sdk.StrayLister = (*Store)(nil)
)

// New returns a store rooted at root (created on first write).
func New(root string) *Store { return &Store{root: root} }

// Root returns the results root.
func (s *Store) Root() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.root
}

// SetRoot changes the results root (the plugin's Configure calls it with the `path` key).
func (s *Store) SetRoot(root string) {
	s.mu.Lock()
	s.root = root
	s.mu.Unlock()
}

// beforeRename, when set (by tests only), runs after a temp file is written and synced and
// before it is moved into place.
var beforeRename func(tmp, final string)

// ValidateID checks an experiment id: 1 to 200 characters from [A-Za-z0-9._+=@-], not starting
// with '.' (so no "..", no hidden files, no separators, no path traversal).
func ValidateID(id string) error {
	const valid = "1 to 200 characters from A-Z a-z 0-9 . _ + = @ -, not starting with '.'"
	if id == "" || len(id) > maxIDLen {
		shown := id
		if len(shown) > maxIDLen {
			shown = strings.ToValidUTF8(shown[:maxIDLen], "") + "…" // never echo a huge id whole
		}
		return fmt.Errorf("%w: experiment id %q: length %d (valid: %s)", sdk.ErrInvalidArgument, shown, len(id), valid)
	}
	if id[0] == '.' {
		return fmt.Errorf("%w: experiment id %q starts with '.' (valid: %s)", sdk.ErrInvalidArgument, id, valid)
	}
	for _, c := range id {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.ContainsRune("._+=@-", c)
		if !ok {
			return fmt.Errorf("%w: experiment id %q contains %q (valid: %s)", sdk.ErrInvalidArgument, id, c, valid)
		}
	}
	return nil
}

func validateRank(rank int) error {
	if rank < 0 {
		return fmt.Errorf("%w: rank %d: ranks are ≥ 0", sdk.ErrInvalidArgument, rank)
	}
	return nil
}

func (s *Store) rawDirOf(exp string) string { return filepath.Join(s.Root(), rawDir, exp) }

func rawName(rank int) string    { return rawPrefix + strconv.Itoa(rank) + rawSuffix }
func markerName(rank int) string { return markerPrefix + strconv.Itoa(rank) }

// SaveRaw stores one worker's raw result; a rank that already has one is ErrAlreadyExists, even
// when two processes race for it (the final name is claimed with link(2), which never replaces).
func (s *Store) SaveRaw(ctx context.Context, exp string, rank int, data []byte) (*sdk.Stored, error) {
	if err := check(ctx, exp, rank); err != nil {
		return nil, err
	}
	path := filepath.Join(s.rawDirOf(exp), rawName(rank))
	if err := writeAtomic(path, data, false); err != nil {
		return nil, fmt.Errorf("save raw result of %s rank %d: %w", exp, rank, err)
	}
	return stored(path, data), nil
}

// MarkComplete writes the rank's completion marker after checking that sum is the sha256 of the
// bytes stored for it.
func (s *Store) MarkComplete(ctx context.Context, exp string, rank int, sum string) (*sdk.Marker, error) {
	if err := check(ctx, exp, rank); err != nil {
		return nil, err
	}
	if sum == "" {
		return nil, fmt.Errorf("%w: mark %s rank %d complete: empty sha256", sdk.ErrInvalidArgument, exp, rank)
	}
	dir := s.rawDirOf(exp)
	path := filepath.Join(dir, rawName(rank))
	data, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("mark %s rank %d complete: %w", exp, rank, err)
	}
	have := hexSum(data)
	if !strings.EqualFold(have, sum) {
		return nil, fmt.Errorf("%w: mark %s rank %d complete: sha256 %s does not match the stored bytes (%s)",
			sdk.ErrFailedPrecondition, exp, rank, sum, have)
	}
	m := markerFile{Rank: rank, SHA256: have, Path: path, TimeUnixNS: time.Now().UnixNano()}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if err := writeAtomic(filepath.Join(dir, markerName(rank)), append(b, '\n'), true); err != nil {
		return nil, fmt.Errorf("mark %s rank %d complete: %w", exp, rank, err)
	}
	return m.sdk(), nil
}

// markerFile is the JSON of a completion marker.
type markerFile struct {
	Rank       int    `json:"rank"`
	SHA256     string `json:"sha256"`
	Path       string `json:"path"`
	TimeUnixNS int64  `json:"time_unix_ns"`
}

func (m markerFile) sdk() *sdk.Marker {
	return &sdk.Marker{Rank: m.Rank, SHA256: m.SHA256, Path: m.Path, TimeUnixNS: m.TimeUnixNS}
}

// ListRaw lists the experiment's raw results by rank, each with the sha256 of its bytes as
// stored now and its completion marker, if any. A marker that does not parse or names another
// rank is that rank's problem (RawEntry.MarkerProblem), not the listing's: the other ranks are
// listed as usual. An experiment with no raw directory is ErrNotFound.
func (s *Store) ListRaw(ctx context.Context, exp string) ([]sdk.RawEntry, error) {
	if err := check(ctx, exp, 0); err != nil {
		return nil, err
	}
	dir, ents, err := s.readRawDir(exp, "list raw results")
	if err != nil {
		return nil, err
	}
	var out []sdk.RawEntry
	for _, e := range ents {
		rank, ok := parseRank(e.Name(), rawPrefix, rawSuffix)
		if !ok || !e.Type().IsRegular() {
			continue // ListStrays reports it
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		path := filepath.Join(dir, e.Name())
		data, err := readFile(path)
		if err != nil {
			return nil, fmt.Errorf("list raw results of %s: %w", exp, err)
		}
		entry := sdk.RawEntry{Rank: rank, Size: int64(len(data)), SHA256: hexSum(data), Path: path}
		m, err := readMarker(filepath.Join(dir, markerName(rank)), rank)
		switch {
		case errors.Is(err, sdk.ErrNotFound):
		case errors.Is(err, errBadMarker):
			entry.MarkerProblem = err.Error()
		case err != nil:
			return nil, fmt.Errorf("list raw results of %s: %w", exp, err)
		default:
			entry.Marker = m
		}
		out = append(out, entry)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Rank < out[j].Rank })
	return out, nil
}

// errBadMarker marks a completion marker that exists but cannot be used.
var errBadMarker = errors.New("unusable completion marker")

// readMarker reads the completion marker at path, which must be rank's: one that does not parse,
// names another rank or has no sha256 is an errBadMarker error naming the file.
func readMarker(path string, rank int) (*sdk.Marker, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	var m markerFile
	switch err := json.Unmarshal(b, &m); {
	case err != nil:
		return nil, fmt.Errorf("%w: completion marker %s does not parse (%d bytes): %v", errBadMarker, path, len(b), err)
	case m.Rank != rank:
		return nil, fmt.Errorf("%w: completion marker %s says rank %d, its name rank %d", errBadMarker, path, m.Rank, rank)
	case m.SHA256 == "":
		return nil, fmt.Errorf("%w: completion marker %s has no sha256", errBadMarker, path)
	}
	return m.sdk(), nil
}

// readRawDir reads the experiment's raw directory; a missing one is ErrNotFound.
func (s *Store) readRawDir(exp, what string) (string, []os.DirEntry, error) {
	dir := s.rawDirOf(exp)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return dir, nil, fmt.Errorf("%w: experiment %s has no raw results in %s", sdk.ErrNotFound, exp, dir)
	}
	if err != nil {
		return dir, nil, fmt.Errorf("%s of %s: %w", what, exp, err)
	}
	return dir, ents, nil
}

// ListStrays lists the names in the experiment's raw directory that are neither a raw result
// (process_<rank>.json, a regular file, rank in canonical decimal) nor the completion marker of
// one (.completed_<rank>): non-canonical names, leftover temp files, markers without a raw
// result, anything else. Nothing reads them; the aggregation reports them as warnings.
func (s *Store) ListStrays(ctx context.Context, exp string) ([]sdk.Stray, error) {
	if err := check(ctx, exp, 0); err != nil {
		return nil, err
	}
	dir, ents, err := s.readRawDir(exp, "list strays")
	if err != nil {
		return nil, err
	}
	raws := map[int]bool{}
	for _, e := range ents {
		if r, ok := parseRank(e.Name(), rawPrefix, rawSuffix); ok && e.Type().IsRegular() {
			raws[r] = true
		}
	}
	var out []sdk.Stray
	for _, e := range ents {
		name := e.Name()
		problem := ""
		if _, ok := parseRank(name, rawPrefix, rawSuffix); ok {
			if !e.Type().IsRegular() {
				problem = "has a raw result's name but is not a regular file; it is not read"
			}
		} else if r, ok := parseRank(name, markerPrefix, ""); ok {
			if !raws[r] {
				problem = fmt.Sprintf("completion marker of rank %d, which has no raw result %s", r, rawName(r))
			}
		} else {
			switch {
			case strings.HasPrefix(name, tempPrefix):
				problem = "temporary file left by an interrupted write; it is not read"
			case strings.HasPrefix(name, rawPrefix) || strings.HasPrefix(name, markerPrefix) || strings.Contains(name, ".json"):
				problem = "looks like a raw result or a completion marker but is not a canonical name (process_<rank>.json, .completed_<rank>, rank in decimal without leading zeros); it is not read"
			default:
				problem = "not a file the store writes; it is not read"
			}
		}
		if problem != "" {
			out = append(out, sdk.Stray{Path: filepath.Join(dir, name), Problem: problem})
		}
	}
	return out, nil
}

// LoadRaw returns the exact bytes stored for a rank.
func (s *Store) LoadRaw(ctx context.Context, exp string, rank int) ([]byte, error) {
	if err := check(ctx, exp, rank); err != nil {
		return nil, err
	}
	b, err := readFile(filepath.Join(s.rawDirOf(exp), rawName(rank)))
	if err != nil {
		return nil, fmt.Errorf("load raw result of %s rank %d: %w", exp, rank, err)
	}
	return b, nil
}

// SaveAggregated stores the aggregate; an existing one is replaced only when overwrite.
func (s *Store) SaveAggregated(ctx context.Context, exp string, data []byte, overwrite bool) (*sdk.Stored, error) {
	if err := check(ctx, exp, 0); err != nil {
		return nil, err
	}
	path := filepath.Join(s.Root(), aggregatedDir, exp+".json")
	if err := writeAtomic(path, data, overwrite); err != nil {
		return nil, fmt.Errorf("save aggregate of %s: %w", exp, err)
	}
	return stored(path, data), nil
}

// LoadAggregated returns the aggregate's bytes.
func (s *Store) LoadAggregated(ctx context.Context, exp string) ([]byte, error) {
	if err := check(ctx, exp, 0); err != nil {
		return nil, err
	}
	b, err := readFile(filepath.Join(s.Root(), aggregatedDir, exp+".json"))
	if err != nil {
		return nil, fmt.Errorf("load aggregate of %s: %w", exp, err)
	}
	return b, nil
}

// SaveManifest stores (and replaces) the run manifest.
func (s *Store) SaveManifest(ctx context.Context, exp string, data []byte) (*sdk.Stored, error) {
	if err := check(ctx, exp, 0); err != nil {
		return nil, err
	}
	path := filepath.Join(s.Root(), runsDir, exp, manifestName)
	if err := writeAtomic(path, data, true); err != nil {
		return nil, fmt.Errorf("save manifest of %s: %w", exp, err)
	}
	return stored(path, data), nil
}

// LoadManifest returns the run manifest's bytes.
func (s *Store) LoadManifest(ctx context.Context, exp string) ([]byte, error) {
	if err := check(ctx, exp, 0); err != nil {
		return nil, err
	}
	b, err := readFile(filepath.Join(s.Root(), runsDir, exp, manifestName))
	if err != nil {
		return nil, fmt.Errorf("load manifest of %s: %w", exp, err)
	}
	return b, nil
}

// List summarises every experiment under the root, sorted by id. Names that are not valid ids
// (temp files, stray files) are skipped. A root that does not exist yet holds no experiments.
func (s *Store) List(ctx context.Context) ([]sdk.Experiment, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	root := s.Root()
	exps := map[string]*sdk.Experiment{}
	get := func(id string, mod time.Time) *sdk.Experiment {
		e := exps[id]
		if e == nil {
			e = &sdk.Experiment{ID: id}
			exps[id] = e
		}
		if ns := mod.UnixNano(); ns > e.ModifiedUnixNS {
			e.ModifiedUnixNS = ns
		}
		return e
	}
	// raw/<exp>/
	if err := eachEntry(filepath.Join(root, rawDir), func(d fs.DirEntry, info fs.FileInfo) error {
		if !d.IsDir() || ValidateID(d.Name()) != nil {
			return nil
		}
		e := get(d.Name(), info.ModTime())
		dir := filepath.Join(root, rawDir, d.Name())
		return eachEntry(dir, func(f fs.DirEntry, fi fs.FileInfo) error {
			if r, ok := parseRank(f.Name(), rawPrefix, rawSuffix); ok {
				e.RawRanks = append(e.RawRanks, r)
				get(d.Name(), fi.ModTime())
			} else if r, ok := parseRank(f.Name(), markerPrefix, ""); ok {
				e.CompletedRanks = append(e.CompletedRanks, r)
				get(d.Name(), fi.ModTime())
			}
			return nil
		})
	}); err != nil {
		return nil, fmt.Errorf("list experiments in %s: %w", root, err)
	}
	// aggregated/<exp>.json
	if err := eachEntry(filepath.Join(root, aggregatedDir), func(d fs.DirEntry, info fs.FileInfo) error {
		id, ok := strings.CutSuffix(d.Name(), ".json")
		if ok && d.Type().IsRegular() && ValidateID(id) == nil {
			get(id, info.ModTime()).Aggregated = true
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list experiments in %s: %w", root, err)
	}
	// runs/<exp>/manifest.json
	if err := eachEntry(filepath.Join(root, runsDir), func(d fs.DirEntry, _ fs.FileInfo) error {
		if !d.IsDir() || ValidateID(d.Name()) != nil {
			return nil
		}
		fi, err := os.Stat(filepath.Join(root, runsDir, d.Name(), manifestName))
		if err == nil && fi.Mode().IsRegular() {
			get(d.Name(), fi.ModTime()).Manifest = true
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list experiments in %s: %w", root, err)
	}
	out := make([]sdk.Experiment, 0, len(exps))
	for _, e := range exps {
		sort.Ints(e.RawRanks)
		sort.Ints(e.CompletedRanks)
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// eachEntry calls fn for each entry of dir; a missing dir has no entries.
func eachEntry(dir string, fn func(fs.DirEntry, fs.FileInfo) error) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return err
		}
		if err := fn(e, info); err != nil {
			return err
		}
	}
	return nil
}

// parseRank parses prefix<rank>suffix with rank a canonical non-negative decimal.
func parseRank(name, prefix, suffix string) (int, bool) {
	s, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, suffix)
	if !ok || s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	r, err := strconv.Atoi(s)
	if err != nil || r < 0 {
		return 0, false
	}
	return r, true
}

func check(ctx context.Context, exp string, rank int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := ValidateID(exp); err != nil {
		return err
	}
	return validateRank(rank)
}

func readFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", sdk.ErrNotFound, path)
	}
	return b, err
}

func stored(path string, data []byte) *sdk.Stored {
	return &sdk.Stored{Path: path, Size: int64(len(data)), SHA256: hexSum(data)}
}

func hexSum(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// writeAtomic writes data to path so that a reader (or a crash) sees the old file or the new one,
// never a torn one: a temp file in the same directory, write, fsync, then rename over path
// (overwrite) or link(2) to path, which fails when path exists (no overwrite); then fsync the
// directory. A crash may leave a ".tmp-*" file behind; nothing reads those.
func writeAtomic(path string, data []byte, overwrite bool) error {
	dir := filepath.Dir(path)
	if err := mkdirDurable(dir); err != nil {
		return err
	}
	if !overwrite {
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("%w: %s", sdk.ErrAlreadyExists, path)
		}
	}
	tmp, err := createTemp(dir, filepath.Base(path))
	if err != nil {
		return err
	}
	name := tmp.Name()
	cleanup := func() { _ = os.Remove(name) }
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		cleanup()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		cleanup()
		return fmt.Errorf("fsync %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		cleanup()
		return fmt.Errorf("close %s: %w", name, err)
	}
	if beforeRename != nil {
		beforeRename(name, path)
	}
	if overwrite {
		if err := os.Rename(name, path); err != nil {
			cleanup()
			return err
		}
	} else {
		err := os.Link(name, path)
		cleanup()
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s", sdk.ErrAlreadyExists, path)
		}
		if err != nil {
			return err
		}
	}
	return syncDir(dir)
}

func createTemp(dir, base string) (*os.File, error) {
	var rnd [8]byte
	for range 10 {
		if _, err := rand.Read(rnd[:]); err != nil {
			return nil, err
		}
		name := filepath.Join(dir, tempPrefix+base+"-"+hex.EncodeToString(rnd[:]))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, err
	}
	return nil, fmt.Errorf("create a temp file in %s: too many collisions", dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		// Some file systems do not support fsync on directories (EINVAL); that is not a failure.
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// mkdirDurable creates dir and its missing parents and fsyncs the parent of each directory it
// created, so that a new directory survives a crash along with the file written into it.
// Existing directories are left alone (their parents may not even be readable).
func mkdirDurable(dir string) error {
	var created []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		created = append(created, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, d := range created {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}
