package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/discovery"
)

func testFactory(t *testing.T) (*cliutil.Factory, func()) {
	t.Helper()
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // discovery's cache stays in the test
	t.Setenv(discovery.PathEnv, "")
	f, closeFn := newFactory(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
	f.Executable = "" // no <dir of lemctl>/plugins: the test binary's directory holds none
	f.PluginDirs = []string{t.TempDir()}
	return f, closeFn
}

// Discovery runs once per process: every caller gets the same catalog, and a second lock is
// refused rather than silently ignored.
func TestFactoryDiscoversOnce(t *testing.T) {
	f, closeFn := testFactory(t)
	defer closeFn()
	ctx := context.Background()
	a, err := f.Catalog(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.Catalog(ctx, "")
	if err != nil || a != b {
		t.Fatalf("second Catalog: %p, %v; want the first catalog %p", b, err, a)
	}
	c, done, err := f.Configurer(ctx)
	if err != nil || c == nil {
		t.Fatalf("Configurer: %v", err)
	}
	done()
	if _, err := f.Catalog(ctx, "/elsewhere.lock"); err == nil || !strings.Contains(err.Error(), "/elsewhere.lock") {
		t.Fatalf("Catalog with another lock: %v", err)
	}
}

// A bad --plugin-dir is discovery's error, returned to every caller (each command maps it).
func TestFactoryCatalogError(t *testing.T) {
	f, closeFn := testFactory(t)
	defer closeFn()
	f.PluginDirs = []string{filepath.Join(t.TempDir(), "missing")}
	for range 2 {
		if _, err := f.Catalog(context.Background(), ""); err == nil || !strings.Contains(err.Error(), "missing") {
			t.Fatalf("Catalog on a missing --plugin-dir: %v", err)
		}
	}
}

// A missing --results-dir is a usage error naming it, before any plugin starts.
func TestFactoryRepositoryNeedsTheDirectory(t *testing.T) {
	f, closeFn := testFactory(t)
	defer closeFn()
	f.ResultsDir = filepath.Join(t.TempDir(), "no-results")
	_, err := f.Repository(context.Background())
	if cliutil.CodeOf(err) != cliutil.ExitUsage || !strings.Contains(err.Error(), "--results-dir "+f.ResultsDir+": no such directory") {
		t.Fatalf("exit %d, %v", cliutil.CodeOf(err), err)
	}
	// Without the fsstore plugin the repository cannot open: a failure (exit 1) naming the directory.
	f2, close2 := testFactory(t)
	defer close2()
	f2.ResultsDir = t.TempDir()
	_, err = f2.Repository(context.Background())
	if cliutil.CodeOf(err) != cliutil.ExitFailed || !strings.Contains(err.Error(), "open results repository "+f2.ResultsDir) {
		t.Fatalf("exit %d, %v", cliutil.CodeOf(err), err)
	}
}
