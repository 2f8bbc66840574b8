package rapl

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
)

// memFS is an fstest.MapFS that a test may change while a sampler reads it.
type memFS struct {
	mu sync.Mutex
	m  fstest.MapFS
}

func (f *memFS) Open(name string) (fs.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m.Open(name)
}

// set replaces a file's content (never mutating the old bytes, which an open file may read).
func (f *memFS) set(name, content string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[name] = &fstest.MapFile{Data: []byte(content + "\n"), Mode: 0o444}
}

func TestSourceRead(t *testing.T) {
	tree := loadTree(t, "twosocket")
	zones := ScanZones(tree, "/sys", DefaultAssumedMaxPower).Zones
	want := map[string]uint64{
		"rapl:intel-rapl:0": 104857600001, "rapl:intel-rapl:0:0": 52428800000, "rapl:intel-rapl:0:1": 1048576000,
		"rapl:intel-rapl:0:2": 20971520000, "rapl:intel-rapl:1": 99857600001, "rapl:intel-rapl:1:1": 2097152000,
		"rapl:intel-rapl:1:2": 19971520000, "rapl:intel-rapl:2": 309857600001,
	}
	mem := &memFS{m: tree}
	denied := false
	fsys := faultFS{mem, func(name string) error {
		if denied && name == "class/powercap/intel-rapl:0:2/energy_uj" {
			return fs.ErrPermission
		}
		return nil
	}}
	src := NewSource(fsys, "/sys", zones)
	ctx := context.Background()

	tests := []struct {
		name   string
		change func()
		want   map[string]uint64
		errs   map[string]string // domain → substring of its error
	}{
		{name: "fixture values", want: want,
			errs: map[string]string{"rapl:intel-rapl:1:0": "this zone exposes no energy counter"}},
		{name: "counters move", change: func() {
			mem.set("class/powercap/intel-rapl:0/energy_uj", "104857700001")
			mem.set("class/powercap/intel-rapl:2/energy_uj", "5")
		}, want: func() map[string]uint64 {
			w := map[string]uint64{}
			for k, v := range want {
				w[k] = v
			}
			w["rapl:intel-rapl:0"], w["rapl:intel-rapl:2"] = 104857700001, 5
			return w
		}(), errs: map[string]string{"rapl:intel-rapl:1:0": "this zone exposes no energy counter"}},
		{name: "permission revoked on one zone, garbage in another", change: func() {
			denied = true
			mem.set("class/powercap/intel-rapl:1/energy_uj", "12ab")
		}, errs: map[string]string{
			"rapl:intel-rapl:1:0": "this zone exposes no energy counter",
			"rapl:intel-rapl:0:2": "read /sys/class/powercap/intel-rapl:0:2/energy_uj: open class/powercap/intel-rapl:0:2/energy_uj: permission denied; energy_uj is readable only by root",
			"rapl:intel-rapl:1":   `holds "12ab", not a counter`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.change != nil {
				tc.change()
			}
			rs, err := src.Read(ctx, false)
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) != len(zones) {
				t.Fatalf("%d readings for %d zones", len(rs), len(zones))
			}
			for i, r := range rs {
				if r.Domain != zones[i].ID() {
					t.Errorf("reading %d is %s, want %s (zone order)", i, r.Domain, zones[i].ID())
				}
				if sub, ok := tc.errs[r.Domain]; ok {
					if r.Err == nil || !strings.Contains(r.Err.Error(), sub) {
						t.Errorf("%s: error %v, want it to contain %q", r.Domain, r.Err, sub)
					}
					if strings.Contains(sub, "permission") && !errors.Is(r.Err, fs.ErrPermission) {
						t.Errorf("%s: error %v does not wrap fs.ErrPermission", r.Domain, r.Err)
					}
					continue
				}
				if r.Err != nil {
					t.Errorf("%s: unexpected error %v", r.Domain, r.Err)
					continue
				}
				if w, ok := tc.want[r.Domain]; ok && r.Counter != w {
					t.Errorf("%s: counter %d, want %d", r.Domain, r.Counter, w)
				}
				if r.MonoNS <= 0 {
					t.Errorf("%s: no read time", r.Domain)
				}
				if r.PowerW == r.PowerW { // not NaN: RAPL reads no power
					t.Errorf("%s: power %v, want NaN (unset)", r.Domain, r.PowerW)
				}
			}
		})
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := src.Read(cctx, false); !errors.Is(err, context.Canceled) {
		t.Errorf("Read with a cancelled context: %v, want context.Canceled", err)
	}
}

// BenchmarkSourceRead reads the eight readable zones of the two-socket fixture from a real
// directory, as the sampler does at every tick.
func BenchmarkSourceRead(b *testing.B) {
	dir := b.TempDir()
	writeTree(b, loadTree(b, "twosocket"), dir)
	fsys := os.DirFS(dir)
	src := NewSource(fsys, dir, ScanZones(fsys, dir, DefaultAssumedMaxPower).Zones)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := src.Read(ctx, false); err != nil {
			b.Fatal(err)
		}
	}
}
