package resultstest

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
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lemctl/lemctl/sdk"
)

// Memory is an in-memory sdk.Repository.
type Memory struct {
	mu   sync.Mutex
	exps map[string]*memExp
	// Now gives marker and modification times; time.Now when nil.
	Now func() time.Time
}

type memExp struct {
	raw        map[int][]byte
	markers    map[int]*sdk.Marker
	badMarkers map[int]string // rank → why its marker cannot be used
	strays     []sdk.Stray
	aggregated []byte
	manifest   []byte
	modified   int64
}

var (
	_ sdk.Repository  = (*Memory)(nil)
	_ sdk.StrayLister = (*Memory)(nil)
)

// NewMemory returns an empty repository.
func NewMemory() *Memory { return &Memory{exps: map[string]*memExp{}} }

func (m *Memory) now() int64 {
	if m.Now != nil {
		return m.Now().UnixNano()
	}
	return time.Now().UnixNano()
}

// validID mirrors fsstore's rule: [A-Za-z0-9._+=@-]{1,200}, no leading dot.
func validID(id string) error {
	if id == "" || len(id) > 200 || id[0] == '.' {
		return fmt.Errorf("%w: experiment id %q", sdk.ErrInvalidArgument, id)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._+=@-", c)) {
			return fmt.Errorf("%w: experiment id %q", sdk.ErrInvalidArgument, id)
		}
	}
	return nil
}

func (m *Memory) exp(ctx context.Context, id string, rank int, create bool) (*memExp, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := validID(id); err != nil {
		return nil, err
	}
	if rank < 0 {
		return nil, fmt.Errorf("%w: rank %d", sdk.ErrInvalidArgument, rank)
	}
	e := m.exps[id]
	if e == nil && create {
		e = &memExp{raw: map[int][]byte{}, markers: map[int]*sdk.Marker{}}
		m.exps[id] = e
	}
	if e == nil {
		return nil, fmt.Errorf("%w: experiment %s", sdk.ErrNotFound, id)
	}
	return e, nil
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func stored(path string, b []byte) *sdk.Stored {
	return &sdk.Stored{Path: path, Size: int64(len(b)), SHA256: hexSum(b)}
}

func rawPath(exp string, rank int) string {
	return "mem:raw/" + exp + "/process_" + strconv.Itoa(rank) + ".json"
}

// SaveRaw implements sdk.Repository.
func (m *Memory) SaveRaw(ctx context.Context, exp string, rank int, data []byte) (*sdk.Stored, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.exp(ctx, exp, rank, true)
	if err != nil {
		return nil, err
	}
	if _, ok := e.raw[rank]; ok {
		return nil, fmt.Errorf("%w: %s", sdk.ErrAlreadyExists, rawPath(exp, rank))
	}
	e.raw[rank] = append([]byte(nil), data...)
	e.modified = m.now()
	return stored(rawPath(exp, rank), data), nil
}

// MarkComplete implements sdk.Repository.
func (m *Memory) MarkComplete(ctx context.Context, exp string, rank int, sum string) (*sdk.Marker, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.exp(ctx, exp, rank, false)
	if err != nil {
		return nil, err
	}
	data, ok := e.raw[rank]
	if !ok {
		return nil, fmt.Errorf("%w: %s", sdk.ErrNotFound, rawPath(exp, rank))
	}
	if !strings.EqualFold(hexSum(data), sum) {
		return nil, fmt.Errorf("%w: sha256 %s does not match the stored bytes", sdk.ErrFailedPrecondition, sum)
	}
	mk := &sdk.Marker{Rank: rank, SHA256: hexSum(data), Path: rawPath(exp, rank), TimeUnixNS: m.now()}
	e.markers[rank] = mk
	e.modified = mk.TimeUnixNS
	c := *mk
	return &c, nil
}

// PutMarker stores a marker as is, without checking it (to build broken fixtures).
func (m *Memory) PutMarker(exp string, mk sdk.Marker) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, _ := m.exp(context.Background(), exp, 0, true)
	e.markers[mk.Rank] = &mk
}

// PutMarkerAt stores mk as rank's marker as is, whatever rank mk names (to build broken
// fixtures).
func (m *Memory) PutMarkerAt(exp string, rank int, mk sdk.Marker) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, _ := m.exp(context.Background(), exp, 0, true)
	e.markers[rank] = &mk
}

// PutMarkerProblem makes rank's marker one that exists but cannot be used, as a repository lists
// a marker that does not parse: ListRaw reports problem and no marker for the rank.
func (m *Memory) PutMarkerProblem(exp string, rank int, problem string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, _ := m.exp(context.Background(), exp, 0, true)
	if e.badMarkers == nil {
		e.badMarkers = map[int]string{}
	}
	e.badMarkers[rank] = problem
}

// PutStray adds a stray ListStrays reports.
func (m *Memory) PutStray(exp string, st sdk.Stray) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, _ := m.exp(context.Background(), exp, 0, true)
	e.strays = append(e.strays, st)
}

// ListStrays implements sdk.StrayLister.
func (m *Memory) ListStrays(ctx context.Context, exp string) ([]sdk.Stray, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.exp(ctx, exp, 0, false)
	if err != nil {
		return nil, err
	}
	return append([]sdk.Stray(nil), e.strays...), nil
}

// PutRaw stores raw bytes as is, replacing what is there (to build broken fixtures).
func (m *Memory) PutRaw(exp string, rank int, data []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, _ := m.exp(context.Background(), exp, 0, true)
	e.raw[rank] = append([]byte(nil), data...)
}

// ListRaw implements sdk.Repository.
func (m *Memory) ListRaw(ctx context.Context, exp string) ([]sdk.RawEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.exp(ctx, exp, 0, false)
	if err != nil {
		return nil, err
	}
	if len(e.raw) == 0 {
		return nil, fmt.Errorf("%w: experiment %s has no raw results", sdk.ErrNotFound, exp)
	}
	out := make([]sdk.RawEntry, 0, len(e.raw))
	for rank, b := range e.raw {
		ent := sdk.RawEntry{Rank: rank, Size: int64(len(b)), SHA256: hexSum(b), Path: rawPath(exp, rank)}
		if problem, bad := e.badMarkers[rank]; bad {
			ent.MarkerProblem = problem
		} else if mk := e.markers[rank]; mk != nil {
			c := *mk
			ent.Marker = &c
		}
		out = append(out, ent)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Rank < out[j].Rank })
	return out, nil
}

// LoadRaw implements sdk.Repository.
func (m *Memory) LoadRaw(ctx context.Context, exp string, rank int) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.exp(ctx, exp, rank, false)
	if err != nil {
		return nil, err
	}
	b, ok := e.raw[rank]
	if !ok {
		return nil, fmt.Errorf("%w: %s", sdk.ErrNotFound, rawPath(exp, rank))
	}
	return append([]byte(nil), b...), nil
}

// SaveAggregated implements sdk.Repository.
func (m *Memory) SaveAggregated(ctx context.Context, exp string, data []byte, overwrite bool) (*sdk.Stored, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.exp(ctx, exp, 0, true)
	if err != nil {
		return nil, err
	}
	path := "mem:aggregated/" + exp + ".json"
	if e.aggregated != nil && !overwrite {
		return nil, fmt.Errorf("%w: %s", sdk.ErrAlreadyExists, path)
	}
	e.aggregated = append([]byte(nil), data...)
	e.modified = m.now()
	return stored(path, data), nil
}

// LoadAggregated implements sdk.Repository.
func (m *Memory) LoadAggregated(ctx context.Context, exp string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.exp(ctx, exp, 0, false)
	if err != nil {
		return nil, err
	}
	if e.aggregated == nil {
		return nil, fmt.Errorf("%w: aggregate of %s", sdk.ErrNotFound, exp)
	}
	return append([]byte(nil), e.aggregated...), nil
}

// SaveManifest implements sdk.Repository.
func (m *Memory) SaveManifest(ctx context.Context, exp string, data []byte) (*sdk.Stored, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.exp(ctx, exp, 0, true)
	if err != nil {
		return nil, err
	}
	e.manifest = append([]byte(nil), data...)
	e.modified = m.now()
	return stored("mem:runs/"+exp+"/manifest.json", data), nil
}

// LoadManifest implements sdk.Repository.
func (m *Memory) LoadManifest(ctx context.Context, exp string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.exp(ctx, exp, 0, false)
	if err != nil {
		return nil, err
	}
	if e.manifest == nil {
		return nil, fmt.Errorf("%w: manifest of %s", sdk.ErrNotFound, exp)
	}
	return append([]byte(nil), e.manifest...), nil
}

// List implements sdk.Repository.
func (m *Memory) List(ctx context.Context) ([]sdk.Experiment, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []sdk.Experiment
	for id, e := range m.exps {
		x := sdk.Experiment{ID: id, Aggregated: e.aggregated != nil, Manifest: e.manifest != nil, ModifiedUnixNS: e.modified}
		for r := range e.raw {
			x.RawRanks = append(x.RawRanks, r)
		}
		for r := range e.markers {
			x.CompletedRanks = append(x.CompletedRanks, r)
		}
		sort.Ints(x.RawRanks)
		sort.Ints(x.CompletedRanks)
		out = append(out, x)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// LoadTree fills a Memory from a directory in fsstore's layout: raw/<exp>/process_<rank>.json,
// raw/<exp>/.completed_<rank> (JSON with rank, sha256, path, time_unix_ns),
// aggregated/<exp>.json and runs/<exp>/manifest.json. Markers are loaded as they are, even
// when their sha256 is wrong, so that broken fixtures stay broken.
func LoadTree(root string) (*Memory, error) {
	m := NewMemory()
	rawRoot := filepath.Join(root, "raw")
	exps, err := os.ReadDir(rawRoot)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load results tree %s: %w", root, err)
	}
	for _, d := range exps {
		if !d.IsDir() {
			continue
		}
		exp := d.Name()
		files, err := os.ReadDir(filepath.Join(rawRoot, exp))
		if err != nil {
			return nil, fmt.Errorf("load results tree %s: %w", root, err)
		}
		for _, f := range files {
			path := filepath.Join(rawRoot, exp, f.Name())
			name := f.Name()
			switch {
			case strings.HasPrefix(name, "process_") && strings.HasSuffix(name, ".json"):
				rank, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, "process_"), ".json"))
				if err != nil {
					return nil, fmt.Errorf("load results tree: %s: bad rank: %w", path, err)
				}
				b, err := os.ReadFile(path)
				if err != nil {
					return nil, fmt.Errorf("load results tree: %w", err)
				}
				m.PutRaw(exp, rank, b)
			case strings.HasPrefix(name, ".completed_"):
				b, err := os.ReadFile(path)
				if err != nil {
					return nil, fmt.Errorf("load results tree: %w", err)
				}
				var mk struct {
					Rank       int    `json:"rank"`
					SHA256     string `json:"sha256"`
					Path       string `json:"path"`
					TimeUnixNS int64  `json:"time_unix_ns"`
				}
				if err := json.Unmarshal(b, &mk); err != nil {
					return nil, fmt.Errorf("load results tree: marker %s: %w", path, err)
				}
				m.PutMarker(exp, sdk.Marker{Rank: mk.Rank, SHA256: mk.SHA256, Path: mk.Path, TimeUnixNS: mk.TimeUnixNS})
			}
		}
	}
	aggs, _ := filepath.Glob(filepath.Join(root, "aggregated", "*.json"))
	for _, p := range aggs {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("load results tree: %w", err)
		}
		if _, err := m.SaveAggregated(context.Background(), strings.TrimSuffix(filepath.Base(p), ".json"), b, true); err != nil {
			return nil, fmt.Errorf("load results tree: %s: %w", p, err)
		}
	}
	mans, _ := filepath.Glob(filepath.Join(root, "runs", "*", "manifest.json"))
	for _, p := range mans {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("load results tree: %w", err)
		}
		if _, err := m.SaveManifest(context.Background(), filepath.Base(filepath.Dir(p)), b); err != nil {
			return nil, fmt.Errorf("load results tree: %s: %w", p, err)
		}
	}
	return m, nil
}

// WriteTree writes raw results and their markers in fsstore's layout under root (for committing
// fixtures). Ranks in noMarker get no marker; ranks in corrupt get a marker whose sha256 is of
// different bytes than those written.
func WriteTree(root, exp string, raws map[int][]byte, noMarker, corrupt map[int]bool) error {
	dir := filepath.Join(root, "raw", exp)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for rank, b := range raws {
		name := "process_" + strconv.Itoa(rank) + ".json"
		written := b
		if corrupt[rank] {
			// The marker names the original bytes; the file on disk is changed after the fact.
			written = append([]byte(nil), b...)
			if i := strings.Index(string(written), `"output_tokens": `); i >= 0 {
				k := i + len(`"output_tokens": `)
				if written[k] == '9' {
					written[k] = '8'
				} else {
					written[k] = '9'
				}
			} else {
				written = append(written, ' ')
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), written, 0o644); err != nil {
			return err
		}
		if noMarker[rank] {
			continue
		}
		mk := map[string]any{"rank": rank, "sha256": hexSum(b), "path": filepath.ToSlash(filepath.Join("raw", exp, name)), "time_unix_ns": 1796000000000000000}
		mb, _ := json.Marshal(mk)
		if err := os.WriteFile(filepath.Join(dir, ".completed_"+strconv.Itoa(rank)), append(mb, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}
