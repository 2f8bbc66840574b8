package discovery

import (
	"context"
	"io"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/lemctl/lemctl/sdk"
)

// benchDir installs four working plugins, as in the examples directory.
func benchDir(b *testing.B) string {
	dir := mkdir(b, "plugins")
	for _, n := range []string{"good-1", "good-2", "good-3", "good-4"} {
		install(b, dir, n)
	}
	return dir
}

func benchOptions(dir, cacheDir string) Options {
	return Options{Dirs: []string{dir}, CacheDir: cacheDir, StartTimeout: 10 * time.Second,
		Logger: hclog.New(&hclog.LoggerOptions{Output: io.Discard, Level: hclog.Warn})}
}

func discoverN(b *testing.B, opts Options, want int) {
	cat, err := Discover(context.Background(), opts)
	if err != nil {
		b.Fatal(err)
	}
	if n := len(cat.Plugins()); n != want {
		b.Fatalf("%d plugins, want %d: %s", n, want, describeProblems(cat))
	}
}

// BenchmarkDiscoverCold: four plugins, each started, asked Info, probed and killed (empty cache).
func BenchmarkDiscoverCold(b *testing.B) {
	dir := benchDir(b)
	cacheRoot := b.TempDir()
	for b.Loop() {
		cacheDir, err := os.MkdirTemp(cacheRoot, "cache-")
		if err != nil {
			b.Fatal(err)
		}
		discoverN(b, benchOptions(dir, cacheDir), 4)
	}
}

// BenchmarkDiscoverWarm: four plugins answered from the cache (none is started).
func BenchmarkDiscoverWarm(b *testing.B) {
	dir := benchDir(b)
	opts := benchOptions(dir, b.TempDir())
	discoverN(b, opts, 4)
	for b.Loop() {
		discoverN(b, opts, 4)
	}
}

// BenchmarkDiscoverWarmLocked: as warm, with a lock, so every binary is hashed each time.
func BenchmarkDiscoverWarmLocked(b *testing.B) {
	dir := benchDir(b)
	if _, err := LockDirs([]string{dir}, ""); err != nil {
		b.Fatal(err)
	}
	opts := benchOptions(dir, b.TempDir())
	discoverN(b, opts, 4)
	for b.Loop() {
		discoverN(b, opts, 4)
	}
}

// BenchmarkOpenClose: one Catalog.Open (start, handshake, Info) and Close of a plugin.
func BenchmarkOpenClose(b *testing.B) {
	dir := benchDir(b)
	cat, err := Discover(context.Background(), benchOptions(dir, b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	defer cat.Close()
	for b.Loop() {
		cl, err := cat.Open(context.Background(), "good-1", sdk.KindEnergy)
		if err != nil {
			b.Fatal(err)
		}
		cl.Close()
	}
}

// BenchmarkBaseRoundTrip: one round trip of the common service (lem.plugin.v1) to a running
// plugin over AutoMTLS gRPC. hostclient.Client asks Info once per start and keeps the answer, so the
// round trip is measured with Configure of an empty table, the same service's other RPC.
func BenchmarkBaseRoundTrip(b *testing.B) {
	dir := benchDir(b)
	cat, err := Discover(context.Background(), benchOptions(dir, b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	defer cat.Close()
	cl, err := cat.Open(context.Background(), "good-1", sdk.KindEnergy)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	for b.Loop() {
		if errs, err := cl.Configure(ctx, nil); err != nil || len(errs) > 0 {
			b.Fatal(err, errs)
		}
	}
}
