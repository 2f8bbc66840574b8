package studyload

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/cliutil"
)

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	f := Files{Dir: dir}
	if err := os.MkdirAll(filepath.Join(dir, "studies", "s1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.Path("s1"), []byte(`{"schema_version":"1","kind":"study","study_id":"s1","points":[{"id":"p00","valid":true}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := f.LoadStudy(context.Background(), "s1")
	if err != nil || s.StudyID != "s1" || len(s.Points) != 1 {
		t.Fatalf("load: %+v %v", s, err)
	}
	if p, err := Point(s, "p00"); err != nil || p.ID != "p00" {
		t.Errorf("point p00: %v", err)
	}
	if _, err := Point(s, "p01"); cliutil.CodeOf(err) != 2 || !strings.Contains(err.Error(), "its points: p00") {
		t.Errorf("point p01: %v", err)
	}
	_, err = f.LoadStudy(context.Background(), "s2")
	if !errors.Is(err, ErrNoStudy) || cliutil.CodeOf(err) != 1 {
		t.Errorf("missing study: %v", err)
	}
	for _, id := range []string{"../x", "", ".."} {
		if _, err := f.LoadStudy(context.Background(), id); cliutil.CodeOf(err) != 2 {
			t.Errorf("id %q: %v, want a usage error", id, err)
		}
	}
	_, err = Files{Dir: filepath.Join(dir, "nope")}.LoadStudy(context.Background(), "s1")
	if cliutil.CodeOf(err) != 2 || !strings.Contains(err.Error(), "--results-dir") || errors.Is(err, ErrNoStudy) {
		t.Errorf("missing results dir: %v", err)
	}
	if err := os.WriteFile(f.Path("s1"), []byte(`{"schema_version":"2","kind":"study"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.LoadStudy(context.Background(), "s1"); err == nil || !strings.Contains(err.Error(), `schema_version "2"`) {
		t.Errorf("schema 2: %v", err)
	}
}
