package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/plugintest"
)

// newStore returns a store configured to a fresh directory.
func newStore(t *testing.T) (*store, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "results")
	s := &store{}
	cfg, errs := sdk.ValidateConfig(schema(), map[string]any{keyPath: root})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if errs, err := s.configure(context.Background(), cfg); err != nil || len(errs) > 0 {
		t.Fatalf("configure: %v %v", errs, err)
	}
	return s, root
}

func TestConfigure(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		path   string
		errKey string
	}{
		{"absent directory is fine", filepath.Join(t.TempDir(), "later"), ""},
		{"a file is not a directory", file, keyPath},
		{"empty", " ", keyPath},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &store{}
			errs, err := s.configure(context.Background(), sdk.Config{keyPath: tc.path})
			if err != nil {
				t.Fatal(err)
			}
			if tc.errKey == "" && (len(errs) > 0 || s.root != tc.path) {
				t.Errorf("errors %v, root %q", errs, s.root)
			}
			if tc.errKey != "" && (len(errs) != 1 || errs[0].Key != tc.errKey) {
				t.Errorf("errors %v, want one on %q", errs, tc.errKey)
			}
		})
	}
}

func TestInvalidArguments(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	for _, id := range []string{"", ".", "..", "../x", "a/b", `a\b`, ".hidden", "a..b", "sp ace", strings.Repeat("x", 201)} {
		t.Run(id, func(t *testing.T) {
			calls := map[string]error{}
			_, calls["SaveRaw"] = s.SaveRaw(ctx, id, 0, []byte("{}"))
			_, calls["LoadRaw"] = s.LoadRaw(ctx, id, 0)
			_, calls["ListRaw"] = s.ListRaw(ctx, id)
			_, calls["MarkComplete"] = s.MarkComplete(ctx, id, 0, strings.Repeat("0", 64))
			_, calls["SaveAggregated"] = s.SaveAggregated(ctx, id, nil, true)
			_, calls["LoadManifest"] = s.LoadManifest(ctx, id)
			for name, err := range calls {
				if !errors.Is(err, sdk.ErrInvalidArgument) {
					t.Errorf("%s(%q): %v, want ErrInvalidArgument", name, id, err)
				}
			}
		})
	}
	if _, err := s.SaveRaw(ctx, "ok", -1, nil); !errors.Is(err, sdk.ErrInvalidArgument) {
		t.Errorf("rank -1: %v", err)
	}
	if _, err := s.MarkComplete(ctx, "ok", 0, "abc"); !errors.Is(err, sdk.ErrInvalidArgument) {
		t.Errorf("short sha256: %v", err)
	}
}

func TestRawResultsAndMarkers(t *testing.T) {
	s, root := newStore(t)
	ctx := context.Background()
	data := []byte(`{"rank":0}`)
	st, err := s.SaveRaw(ctx, "exp1", 0, data)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(root, "exp1", "raw", "rank-0.json")
	if st.Path != want || st.Size != int64(len(data)) || st.SHA256 != sha256Hex(data) {
		t.Errorf("stored %+v", st)
	}
	if _, err := s.SaveRaw(ctx, "exp1", 0, []byte("other")); !errors.Is(err, sdk.ErrAlreadyExists) {
		t.Errorf("second SaveRaw: %v", err)
	}
	if b, _ := os.ReadFile(want); !bytes.Equal(b, data) {
		t.Errorf("a refused SaveRaw changed the file: %q", b)
	}
	if _, err := s.MarkComplete(ctx, "exp1", 0, sha256Hex([]byte("other"))); !errors.Is(err, sdk.ErrFailedPrecondition) {
		t.Errorf("MarkComplete with the wrong sum: %v", err)
	}
	if _, err := s.MarkComplete(ctx, "exp1", 3, sha256Hex(data)); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("MarkComplete of a missing rank: %v", err)
	}
	mk, err := s.MarkComplete(ctx, "exp1", 0, strings.ToUpper(sha256Hex(data)))
	if err != nil || mk.Rank != 0 || mk.SHA256 != sha256Hex(data) || mk.Path != want || mk.TimeUnixNS == 0 {
		t.Fatalf("marker %+v, %v", mk, err)
	}
	if _, err := s.SaveRaw(ctx, "exp1", 2, []byte("two")); err != nil {
		t.Fatal(err)
	}
	entries, err := s.ListRaw(ctx, "exp1")
	if err != nil || len(entries) != 2 {
		t.Fatalf("ListRaw: %+v, %v", entries, err)
	}
	if entries[0].Rank != 0 || entries[0].Marker == nil || *entries[0].Marker != *mk || entries[1].Rank != 2 || entries[1].Marker != nil ||
		entries[1].SHA256 != sha256Hex([]byte("two")) || entries[1].Size != 3 {
		t.Errorf("entries %+v / %+v", entries[0], entries[1])
	}
	if _, err := s.ListRaw(ctx, "nope"); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("ListRaw of a missing experiment: %v", err)
	}
	if _, err := s.LoadRaw(ctx, "exp1", 1); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("LoadRaw of a missing rank: %v", err)
	}
	// Nothing but the final names is left behind.
	var names []string
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, _ error) error {
		if !d.IsDir() {
			names = append(names, strings.TrimPrefix(p, root+"/"))
		}
		return nil
	})
	if wantNames := []string{"exp1/raw/rank-0.done.json", "exp1/raw/rank-0.json", "exp1/raw/rank-2.json"}; !reflect.DeepEqual(names, wantNames) {
		t.Errorf("files %v, want %v", names, wantNames)
	}
}

func TestSaveRawConcurrentSameRank(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.SaveRaw(ctx, "race", 0, []byte{byte(i)})
		}()
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won >= 0:
			t.Errorf("writers %d and %d both stored rank 0", won, i)
		case err == nil:
			won = i
		case !errors.Is(err, sdk.ErrAlreadyExists):
			t.Errorf("writer %d: %v", i, err)
		}
	}
	if b, err := s.LoadRaw(ctx, "race", 0); err != nil || won < 0 || !bytes.Equal(b, []byte{byte(won)}) {
		t.Errorf("rank 0 holds %v (%v), the winner was %d", b, err, won)
	}
}

func TestAggregatedManifestAndList(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if list, err := s.List(ctx); err != nil || len(list) != 0 {
		t.Errorf("List of an empty store: %v, %v", list, err)
	}
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"load missing aggregate", func() error { _, err := s.LoadAggregated(ctx, "e"); return err }, sdk.ErrNotFound},
		{"load missing manifest", func() error { _, err := s.LoadManifest(ctx, "e"); return err }, sdk.ErrNotFound},
		{"save aggregate", func() error { _, err := s.SaveAggregated(ctx, "e", []byte("a1"), false); return err }, nil},
		{"save aggregate again", func() error { _, err := s.SaveAggregated(ctx, "e", []byte("a2"), false); return err }, sdk.ErrAlreadyExists},
		{"overwrite aggregate", func() error { _, err := s.SaveAggregated(ctx, "e", []byte("a3"), true); return err }, nil},
		{"save manifest", func() error { _, err := s.SaveManifest(ctx, "e", []byte("m1")); return err }, nil},
		{"replace manifest", func() error { _, err := s.SaveManifest(ctx, "e", []byte("m2")); return err }, nil},
		{"raw of rank 1", func() error { _, err := s.SaveRaw(ctx, "e", 1, []byte("r1")); return err }, nil},
		{"raw of rank 0", func() error { _, err := s.SaveRaw(ctx, "e", 0, []byte("r0")); return err }, nil},
		{"mark rank 1", func() error { _, err := s.MarkComplete(ctx, "e", 1, sha256Hex([]byte("r1"))); return err }, nil},
		{"another experiment", func() error { _, err := s.SaveManifest(ctx, "d", []byte("{}")); return err }, nil},
	}
	for _, tc := range tests {
		if err := tc.call(); !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Fatalf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if b, err := s.LoadAggregated(ctx, "e"); err != nil || string(b) != "a3" {
		t.Errorf("aggregate %q, %v", b, err)
	}
	if b, err := s.LoadManifest(ctx, "e"); err != nil || string(b) != "m2" {
		t.Errorf("manifest %q, %v", b, err)
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("List: %+v, %v", list, err)
	}
	d, e := list[0], list[1]
	if d.ID != "d" || !d.Manifest || d.Aggregated || len(d.RawRanks) != 0 {
		t.Errorf("experiment d: %+v", d)
	}
	if e.ID != "e" || !e.Manifest || !e.Aggregated || !reflect.DeepEqual(e.RawRanks, []int{0, 1}) || !reflect.DeepEqual(e.CompletedRanks, []int{1}) ||
		e.ModifiedUnixNS == 0 {
		t.Errorf("experiment e: %+v", e)
	}
}

func TestConformance(t *testing.T) {
	plugintest.Run(t, newPlugin(), plugintest.Options{
		Config: map[string]any{keyPath: filepath.Join(t.TempDir(), "results")},
	})
}
