package rapl

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// loadTree reads testdata/<name>.txtar: text before the first "-- path --" line is a comment,
// each such line starts a file whose content runs to the next one. The trees live in one file
// because zone directory names contain ':', which Go module zips refuse in file names.
func loadTree(t testing.TB, name string) fstest.MapFS {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name+".txtar"))
	if err != nil {
		t.Fatalf("open fixture: %v", err)
	}
	defer f.Close()
	tree := fstest.MapFS{}
	var cur string
	var body strings.Builder
	flush := func() {
		if cur != "" {
			tree[cur] = &fstest.MapFile{Data: []byte(body.String()), Mode: 0o444}
		}
		body.Reset()
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "-- ") && strings.HasSuffix(line, " --") && len(line) > 6 {
			flush()
			cur = strings.TrimSpace(line[3 : len(line)-3])
			continue
		}
		if cur != "" {
			body.WriteString(line + "\n")
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read fixture %s: %v", name, err)
	}
	flush()
	if len(tree) == 0 {
		t.Fatalf("fixture %s has no files", name)
	}
	return tree
}

// writeTree writes tree under dir, for code that reads a real directory.
func writeTree(t testing.TB, tree fstest.MapFS, dir string) {
	t.Helper()
	for name, f := range tree {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// faultFS wraps an fs.FS and fails the paths fault chooses, the way sysfs fails a non-root
// reader of energy_uj (CI runs as root, so chmod cannot produce these errors).
type faultFS struct {
	fs.FS
	fault func(name string) error
}

// Open fails like the kernel would: a missing file stays missing, an existing one is refused.
func (f faultFS) Open(name string) (fs.File, error) {
	file, err := f.FS.Open(name)
	if err != nil {
		return nil, err
	}
	if err := f.fault(name); err != nil {
		file.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return file, nil
}

// denyEnergy fails every energy_uj file (or only those of the given zone dirs) with
// fs.ErrPermission.
func denyEnergy(dirs ...string) func(string) error {
	return func(name string) error {
		if !strings.HasSuffix(name, "/energy_uj") {
			return nil
		}
		if len(dirs) == 0 {
			return fs.ErrPermission
		}
		for _, d := range dirs {
			if name == PowercapDir+"/"+d+"/energy_uj" {
				return fs.ErrPermission
			}
		}
		return nil
	}
}
