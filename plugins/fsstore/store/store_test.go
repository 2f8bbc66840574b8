package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lemctl/lemctl/sdk"
)

// The test binary doubles as a helper process (the os/exec TestHelperProcess pattern): with
// FSSTORE_HELPER set, TestMain runs one store operation in this process and exits.
func TestMain(m *testing.M) {
	if mode := os.Getenv("FSSTORE_HELPER"); mode != "" {
		os.Exit(helper(mode))
	}
	os.Exit(m.Run())
}

func helper(mode string) int {
	root, exp := os.Getenv("FSSTORE_ROOT"), os.Getenv("FSSTORE_EXP")
	s := New(root)
	ctx := context.Background()
	switch mode {
	case "hang-before-rename":
		// Signal the parent once the temp file is written and synced, then wait to be killed.
		ready := os.Getenv("FSSTORE_READY")
		beforeRename = func(tmp, final string) {
			_ = os.WriteFile(ready, []byte(tmp), 0o644)
			for {
				time.Sleep(time.Hour)
			}
		}
		data := bytes.Repeat([]byte("NEW"), 1<<20)
		var err error
		if os.Getenv("FSSTORE_WHAT") == "raw" {
			_, err = s.SaveRaw(ctx, exp, 0, data)
		} else {
			_, err = s.SaveManifest(ctx, exp, data)
		}
		fmt.Fprintln(os.Stderr, "helper: the write returned, it should have hung:", err)
		return 3
	case "writer":
		// Save every rank in FSSTORE_RANKS and overwrite the manifest FSSTORE_N times with
		// large distinct payloads; print one line per rank: "<rank> ok" or "<rank> exists".
		tag := os.Getenv("FSSTORE_TAG")
		n, _ := strconv.Atoi(os.Getenv("FSSTORE_N"))
		for _, r := range strings.Split(os.Getenv("FSSTORE_RANKS"), ",") {
			rank, _ := strconv.Atoi(r)
			_, err := s.SaveRaw(ctx, exp, rank, payload(tag, rank))
			switch {
			case err == nil:
				fmt.Printf("%d ok\n", rank)
			case errors.Is(err, sdk.ErrAlreadyExists):
				fmt.Printf("%d exists\n", rank)
			default:
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		for i := range n {
			if _, err := s.SaveManifest(ctx, exp, payload(tag, 1000+i)); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
	return 2
}

// payload is a recognisable 256 KiB body: every byte pattern names its writer and item.
func payload(tag string, item int) []byte {
	line := fmt.Sprintf("%s-%d;", tag, item)
	return bytes.Repeat([]byte(line), (256<<10)/len(line)+1)
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s := New(root)
	data := []byte(`{"rank":0}`)
	st, err := s.SaveRaw(ctx, "exp1", 0, data)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "raw", "exp1", "process_0.json"); st.Path != want || st.Size != int64(len(data)) || st.SHA256 != sum(data) {
		t.Fatalf("stored = %+v, want path %s", st, want)
	}
	if _, err := s.SaveRaw(ctx, "exp1", 0, []byte("other")); !errors.Is(err, sdk.ErrAlreadyExists) {
		t.Fatalf("second SaveRaw of rank 0: %v, want ErrAlreadyExists", err)
	}
	if _, err := s.MarkComplete(ctx, "exp1", 0, sum([]byte("other"))); !errors.Is(err, sdk.ErrFailedPrecondition) {
		t.Fatalf("MarkComplete with a wrong sha256: %v, want ErrFailedPrecondition", err)
	}
	if _, err := s.MarkComplete(ctx, "exp1", 1, sum(data)); !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("MarkComplete of a rank never saved: %v, want ErrNotFound", err)
	}
	m, err := s.MarkComplete(ctx, "exp1", 0, strings.ToUpper(sum(data)))
	if err != nil {
		t.Fatal(err)
	}
	if m.Rank != 0 || m.SHA256 != sum(data) || m.Path != st.Path || m.TimeUnixNS == 0 {
		t.Fatalf("marker = %+v", m)
	}
	marker, err := os.ReadFile(filepath.Join(root, "raw", "exp1", ".completed_0"))
	if err != nil || !bytes.Contains(marker, []byte(`"sha256":"`+sum(data)+`"`)) {
		t.Fatalf("marker file = %s, %v", marker, err)
	}
	if _, err := s.SaveRaw(ctx, "exp1", 2, []byte("two")); err != nil {
		t.Fatal(err)
	}
	// Files ListRaw must ignore: a temp file, a non-canonical rank, a stray file.
	for _, name := range []string{".tmp-process_3.json-abcd", "process_01.json", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(root, "raw", "exp1", name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := s.ListRaw(ctx, "exp1")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0].Rank != 0 || entries[0].Marker == nil || entries[0].SHA256 != sum(data) ||
		entries[1].Rank != 2 || entries[1].Marker != nil || entries[1].Size != 3 {
		t.Fatalf("ListRaw = %+v", entries)
	}
	got, err := s.LoadRaw(ctx, "exp1", 2)
	if err != nil || string(got) != "two" {
		t.Fatalf("LoadRaw = %q, %v", got, err)
	}
	if _, err := s.LoadRaw(ctx, "exp1", 5); !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("LoadRaw of a missing rank: %v", err)
	}
	if _, err := s.ListRaw(ctx, "nope"); !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("ListRaw of a missing experiment: %v", err)
	}
	// The files ListRaw ignores are strays, each with its problem.
	strays, err := s.ListStrays(ctx, "exp1")
	if err != nil {
		t.Fatal(err)
	}
	gotStrays := map[string]string{}
	for _, st := range strays {
		gotStrays[filepath.Base(st.Path)] = st.Problem
	}
	for name, want := range map[string]string{".tmp-process_3.json-abcd": "temporary file", "process_01.json": "not a canonical name", "notes.txt": "not a file the store writes"} {
		if !strings.Contains(gotStrays[name], want) {
			t.Errorf("stray %s: problem %q, want it to say %q (strays %v)", name, gotStrays[name], want, gotStrays)
		}
	}
	if len(strays) != 3 {
		t.Errorf("ListStrays = %v, want the 3 stray files only", gotStrays)
	}

	// Aggregates: no overwrite unless asked.
	if _, err := s.LoadAggregated(ctx, "exp1"); !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("LoadAggregated before saving: %v", err)
	}
	if _, err := s.SaveAggregated(ctx, "exp1", []byte("agg1"), false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveAggregated(ctx, "exp1", []byte("agg2"), false); !errors.Is(err, sdk.ErrAlreadyExists) {
		t.Fatalf("SaveAggregated without overwrite: %v", err)
	}
	if _, err := s.SaveAggregated(ctx, "exp1", []byte("agg2"), true); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.LoadAggregated(ctx, "exp1"); string(got) != "agg2" {
		t.Fatalf("aggregate = %q", got)
	}
	// Manifests are replaced.
	for _, body := range []string{"m1", "m2"} {
		if _, err := s.SaveManifest(ctx, "exp2", []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := s.LoadManifest(ctx, "exp2"); string(got) != "m2" {
		t.Fatalf("manifest = %q", got)
	}
	if _, err := s.LoadManifest(ctx, "exp1"); !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("LoadManifest of exp1: %v", err)
	}

	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("List = %+v", list)
	}
	e1, e2 := list[0], list[1]
	if e1.ID != "exp1" || fmt.Sprint(e1.RawRanks) != "[0 2]" || fmt.Sprint(e1.CompletedRanks) != "[0]" ||
		!e1.Aggregated || e1.Manifest || e1.ModifiedUnixNS == 0 {
		t.Errorf("List[0] = %+v", e1)
	}
	if e2.ID != "exp2" || len(e2.RawRanks) != 0 || e2.Aggregated || !e2.Manifest {
		t.Errorf("List[1] = %+v", e2)
	}
	// No temp files are left behind by successful writes.
	leftovers, _ := filepath.Glob(filepath.Join(root, "*", ".tmp-*"))
	more, _ := filepath.Glob(filepath.Join(root, "*", "*", ".tmp-*"))
	leftovers = append(leftovers, more...)
	if len(leftovers) != 1 || !strings.HasSuffix(leftovers[0], ".tmp-process_3.json-abcd") {
		t.Errorf("temp files left: %v", leftovers)
	}
}

func TestListEmptyRoot(t *testing.T) {
	s := New(filepath.Join(t.TempDir(), "does-not-exist"))
	list, err := s.List(context.Background())
	if err != nil || len(list) != 0 {
		t.Fatalf("List of a missing root = %v, %v", list, err)
	}
}

func TestInvalidArguments(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s := New(filepath.Join(root, "results"))
	tests := []struct {
		name string
		exp  string
		rank int
	}{
		{"parent traversal", "../x", 0},
		{"dot dot", "..", 0},
		{"separator", "a/b", 0},
		{"backslash", `a\b`, 0},
		{"leading dot", ".hidden", 0},
		{"empty", "", 0},
		{"space", "a b", 0},
		{"nul", "a\x00b", 0},
		{"too long", strings.Repeat("a", 201), 0},
		{"negative rank", "ok", -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := map[string]error{}
			_, calls["SaveRaw"] = s.SaveRaw(ctx, tc.exp, tc.rank, []byte("x"))
			_, calls["MarkComplete"] = s.MarkComplete(ctx, tc.exp, tc.rank, sum([]byte("x")))
			_, calls["LoadRaw"] = s.LoadRaw(ctx, tc.exp, tc.rank)
			if tc.rank >= 0 {
				_, calls["ListRaw"] = s.ListRaw(ctx, tc.exp)
				_, calls["SaveAggregated"] = s.SaveAggregated(ctx, tc.exp, []byte("x"), true)
				_, calls["LoadAggregated"] = s.LoadAggregated(ctx, tc.exp)
				_, calls["SaveManifest"] = s.SaveManifest(ctx, tc.exp, []byte("x"))
				_, calls["LoadManifest"] = s.LoadManifest(ctx, tc.exp)
			}
			for call, err := range calls {
				if !errors.Is(err, sdk.ErrInvalidArgument) {
					t.Errorf("%s(%q, %d) = %v, want ErrInvalidArgument", call, tc.exp, tc.rank, err)
				}
			}
		})
	}
	// Nothing was written anywhere, least of all outside the root.
	ents, _ := os.ReadDir(root)
	if len(ents) != 0 {
		t.Errorf("invalid ids wrote %v", ents)
	}
	for _, ok := range []string{"a", "run-2026.11.28_12h+x=y@host", "A1"} {
		if err := ValidateID(ok); err != nil {
			t.Errorf("ValidateID(%q) = %v", ok, err)
		}
	}
}

func TestCanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := New(t.TempDir()).SaveRaw(ctx, "e", 0, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("SaveRaw with a canceled context: %v", err)
	}
}

func helperCmd(t *testing.T, mode string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"FSSTORE_HELPER=" + mode}, env...)...)
	return cmd
}

// A process killed between writing its temp file and renaming it leaves the old file (or none)
// intact: never a torn or partial final file.
func TestCrashBeforeRename(t *testing.T) {
	for _, what := range []string{"manifest", "raw"} {
		t.Run(what, func(t *testing.T) {
			ctx := context.Background()
			root := t.TempDir()
			s := New(root)
			old := []byte(`{"old":true}`)
			var final string
			if what == "manifest" {
				if _, err := s.SaveManifest(ctx, "crash", old); err != nil {
					t.Fatal(err)
				}
				final = filepath.Join(root, "runs", "crash", "manifest.json")
			} else {
				final = filepath.Join(root, "raw", "crash", "process_0.json")
			}
			ready := filepath.Join(t.TempDir(), "ready")
			cmd := helperCmd(t, "hang-before-rename", "FSSTORE_ROOT="+root, "FSSTORE_EXP=crash",
				"FSSTORE_READY="+ready, "FSSTORE_WHAT="+what)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var tmp []byte
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				var err error
				if tmp, err = os.ReadFile(ready); err == nil && len(tmp) > 0 {
					break
				}
				select {
				case err := <-done:
					t.Fatalf("helper exited before the rename point: %v\n%s", err, stderr.String())
				default:
				}
				if time.Now().After(deadline) {
					t.Fatal("helper never reached the rename point")
				}
			}
			// The temp file is complete on disk; kill the writer before it renames.
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-done
			if fi, err := os.Stat(string(tmp)); err != nil || fi.Size() != 3<<20 {
				t.Fatalf("temp file %s after the kill: %v, %v", tmp, fi, err)
			}
			got, err := os.ReadFile(final)
			if what == "manifest" {
				if err != nil || !bytes.Equal(got, old) {
					t.Fatalf("manifest after the crash = %.40q, %v; want the old content", got, err)
				}
				if got, err := s.LoadManifest(ctx, "crash"); err != nil || !bytes.Equal(got, old) {
					t.Fatalf("LoadManifest after the crash = %.40q, %v", got, err)
				}
			} else {
				if !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("raw result after the crash: %d bytes, %v; want none", len(got), err)
				}
				if entries, err := s.ListRaw(ctx, "crash"); err != nil || len(entries) != 0 {
					t.Fatalf("ListRaw after the crash = %+v, %v; want no entries", entries, err)
				}
				// The rank can still be saved after the crash.
				if _, err := s.SaveRaw(ctx, "crash", 0, old); err != nil {
					t.Fatalf("SaveRaw after the crash: %v", err)
				}
			}
		})
	}
}

// Two processes writing into one root at once: each rank is stored by exactly one of them, every
// stored file is exactly one writer's payload, and the manifest is always one whole payload.
func TestParallelWriters(t *testing.T) {
	root := t.TempDir()
	const ranks = 20
	var list []string
	for r := range ranks {
		list = append(list, strconv.Itoa(r))
	}
	type result struct {
		out []byte
		err error
	}
	results := make([]result, 2)
	var wg sync.WaitGroup
	for i, tag := range []string{"A", "B"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := helperCmd(t, "writer", "FSSTORE_ROOT="+root, "FSSTORE_EXP=par", "FSSTORE_TAG="+tag,
				"FSSTORE_RANKS="+strings.Join(list, ","), "FSSTORE_N=20")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				err = fmt.Errorf("%w: %s", err, stderr.String())
			}
			results[i] = result{out, err}
		}()
	}
	// Meanwhile, read the manifest as often as possible: it is absent or one whole payload.
	stop := make(chan struct{})
	readerErr := make(chan error, 1)
	go func() {
		s := New(root)
		for {
			select {
			case <-stop:
				readerErr <- nil
				return
			default:
			}
			b, err := s.LoadManifest(context.Background(), "par")
			if errors.Is(err, sdk.ErrNotFound) {
				continue
			}
			if err != nil {
				readerErr <- err
				return
			}
			if !wholePayload(b) {
				readerErr <- fmt.Errorf("torn manifest read: %d bytes starting %.20q", len(b), b)
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	if err := <-readerErr; err != nil {
		t.Fatal(err)
	}
	winners := map[int]string{}
	for i, tag := range []string{"A", "B"} {
		if results[i].err != nil {
			t.Fatalf("writer %s: %v", tag, results[i].err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(results[i].out)), "\n") {
			var rank int
			var status string
			fmt.Sscanf(line, "%d %s", &rank, &status)
			if status == "ok" {
				if prev, dup := winners[rank]; dup {
					t.Errorf("rank %d saved by both %s and %s", rank, prev, tag)
				}
				winners[rank] = tag
			}
		}
	}
	s := New(root)
	entries, err := s.ListRaw(context.Background(), "par")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != ranks || len(winners) != ranks {
		t.Fatalf("%d raw files, %d winners; want %d", len(entries), len(winners), ranks)
	}
	for _, e := range entries {
		b, _ := s.LoadRaw(context.Background(), "par", e.Rank)
		if want := payload(winners[e.Rank], e.Rank); !bytes.Equal(b, want) {
			t.Errorf("rank %d: stored %d bytes starting %.20q, want %s's payload", e.Rank, len(b), b, winners[e.Rank])
		}
	}
	b, _ := s.LoadManifest(context.Background(), "par")
	if !wholePayload(b) {
		t.Errorf("final manifest is not one whole payload: %.40q", b)
	}
	tmps, _ := filepath.Glob(filepath.Join(root, "*", "par", ".tmp-*"))
	if len(tmps) != 0 {
		t.Errorf("temp files left: %v", tmps)
	}
}

// wholePayload reports whether b is exactly payload(tag, item) for the tag and item of its first
// record.
func wholePayload(b []byte) bool {
	i := bytes.IndexByte(b, ';')
	if i < 0 {
		return false
	}
	tag, item, ok := strings.Cut(string(b[:i]), "-")
	if !ok {
		return false
	}
	n, err := strconv.Atoi(item)
	return err == nil && bytes.Equal(b, payload(tag, n))
}

func BenchmarkSaveRaw(b *testing.B) {
	s := New(b.TempDir())
	data := bytes.Repeat([]byte("x"), 1<<20)
	b.SetBytes(int64(len(data)))
	for i := 0; b.Loop(); i++ {
		if _, err := s.SaveRaw(context.Background(), "bench", i, data); err != nil {
			b.Fatal(err)
		}
	}
}

// TestListRawKeepsMarkerProblemsPerRank: a completion marker that does not parse, names another
// rank or has no sha256 is its rank's problem, naming the file; the other ranks list as usual.
func TestListRawKeepsMarkerProblemsPerRank(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s := New(root)
	for r := range 4 {
		data := []byte(fmt.Sprintf(`{"rank":%d}`, r))
		if _, err := s.SaveRaw(ctx, "m", r, data); err != nil {
			t.Fatal(err)
		}
		if _, err := s.MarkComplete(ctx, "m", r, sum(data)); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(root, "raw", "m")
	bad := map[int]struct{ content, want string }{
		1: {`{"rank":1,"sha256":`, "does not parse"},
		2: {`{"rank":0,"sha256":"ab"}`, "says rank 0, its name rank 2"},
		3: {`{"rank":3}`, "has no sha256"},
	}
	for r, b := range bad {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf(".completed_%d", r)), []byte(b.content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A marker without a raw result is a stray.
	if err := os.WriteFile(filepath.Join(dir, ".completed_7"), []byte(`{"rank":7,"sha256":"ab"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	entries, err := s.ListRaw(ctx, "m")
	if err != nil {
		t.Fatalf("ListRaw with bad markers: %v (want per-rank problems)", err)
	}
	if len(entries) != 4 {
		t.Fatalf("ListRaw = %+v, want 4 entries", entries)
	}
	if e := entries[0]; e.Marker == nil || e.MarkerProblem != "" || e.Path != filepath.Join(dir, "process_0.json") {
		t.Errorf("rank 0 = %+v, want its marker and path", e)
	}
	for r, b := range bad {
		e := entries[r]
		if e.Marker != nil || !strings.Contains(e.MarkerProblem, b.want) || !strings.Contains(e.MarkerProblem, fmt.Sprintf(".completed_%d", r)) {
			t.Errorf("rank %d = %+v, want no marker and a problem naming .completed_%d and saying %q", r, e, r, b.want)
		}
	}
	strays, err := s.ListStrays(ctx, "m")
	if err != nil || len(strays) != 1 || filepath.Base(strays[0].Path) != ".completed_7" || !strings.Contains(strays[0].Problem, "no raw result") {
		t.Errorf("ListStrays = %+v, %v; want .completed_7 without a raw result", strays, err)
	}
}
