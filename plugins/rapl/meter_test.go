package rapl

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/units"
)

// newTestMeter returns a meter reading fsys whatever its root, with settings s.
func newTestMeter(fsys fs.FS, s Settings) *Meter {
	m := NewMeter(Options{FS: func(string) fs.FS { return fsys }, Logger: hclog.NewNullLogger()})
	m.SetSettings(s)
	return m
}

func ids(doms []sdk.Domain) []string {
	var out []string
	for _, d := range doms {
		out = append(out, d.ID)
	}
	return out
}

func TestInventory(t *testing.T) {
	all := []string{"rapl:intel-rapl:0", "rapl:intel-rapl:0:0", "rapl:intel-rapl:0:1", "rapl:intel-rapl:0:2", "rapl:intel-rapl:1",
		"rapl:intel-rapl:1:0", "rapl:intel-rapl:1:1", "rapl:intel-rapl:1:2", "rapl:intel-rapl:2"}
	tests := []struct {
		name      string
		fsys      fs.FS
		zones     []string
		want      []string
		available int
		reason    string // a regexp matching the reason of every unavailable domain
	}{
		{name: "all zones", fsys: loadTree(t, "twosocket"), want: all, available: 8, reason: "exposes no energy counter"},
		{name: "filter by kind", fsys: loadTree(t, "twosocket"), zones: []string{"dram"}, want: []string{"rapl:intel-rapl:0:2", "rapl:intel-rapl:1:2"}, available: 2},
		{name: "filter by id, dir and label", fsys: loadTree(t, "twosocket"), zones: []string{"rapl:intel-rapl:2", "intel-rapl:1", "package-0/dram"},
			want: []string{"rapl:intel-rapl:0:2", "rapl:intel-rapl:1", "rapl:intel-rapl:2"}, available: 3},
		{name: "filter matching nothing", fsys: loadTree(t, "twosocket"), zones: []string{"package-7"}, want: []string{"rapl"},
			reason: `no RAPL zone matches the zones setting \["package-7"\]; this host has intel-rapl:0 \(package-0\)`},
		{name: "every counter root-only", fsys: faultFS{loadTree(t, "twosocket"), denyEnergy()}, want: all,
			reason: "energy_uj is readable only by root since CVE-2020-8694|intel-rapl:1:0/energy_uj: this zone exposes no energy counter"},
		{name: "no powercap", fsys: fstest.MapFS{}, want: []string{"rapl"}, reason: "no /sys/class/powercap: this kernel exposes no powercap interface"},
		{name: "no zones", fsys: loadTree(t, "nozones"), want: []string{"rapl"}, reason: "no RAPL zones under /sys/class/powercap"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := DefaultSettings()
			s.Root, s.Zones = "/sys", tc.zones
			doms, err := newTestMeter(tc.fsys, s).Inventory(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(ids(doms), " "); got != strings.Join(tc.want, " ") {
				t.Fatalf("domains %s, want %s", got, strings.Join(tc.want, " "))
			}
			avail := 0
			for _, d := range doms {
				if d.Available {
					avail++
					if d.Reason != "" {
						t.Errorf("%s available with reason %q", d.ID, d.Reason)
					}
					continue
				}
				if ok, _ := regexp.MatchString(tc.reason, d.Reason); d.Reason == "" || !ok {
					t.Errorf("%s unavailable with reason %q, want it to contain %q", d.ID, d.Reason, tc.reason)
				}
				if d.MaxPower != 0 && d.ID == unavailableID {
					t.Errorf("placeholder domain claims a max power")
				}
			}
			if avail != tc.available {
				t.Errorf("%d available, want %d", avail, tc.available)
			}
		})
	}
}

// TestInventoryThisHost reads the real /sys: without powercap (this build machine) the one
// domain is unavailable with the reason; with RAPL every domain is available or says why not.
func TestInventoryThisHost(t *testing.T) {
	m := NewMeter(Options{Logger: hclog.NewNullLogger()})
	doms, err := m.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(doms) == 0 {
		t.Fatal("no domain at all: an unavailable meter must still say why")
	}
	if _, err := os.Stat("/sys/class/powercap"); errors.Is(err, fs.ErrNotExist) {
		if len(doms) != 1 || doms[0].Available || !strings.Contains(doms[0].Reason, "no /sys/class/powercap") {
			t.Fatalf("without powercap: %+v", doms)
		}
		return
	}
	for _, d := range doms {
		if !d.Available && d.Reason == "" {
			t.Errorf("%s unavailable without a reason", d.ID)
		}
		t.Logf("%s %s available=%v %s", d.ID, d.Name, d.Available, d.Reason)
	}
}

func TestEnvironment(t *testing.T) {
	s := DefaultSettings()
	s.Root = "/sys"
	env, err := newTestMeter(loadTree(t, "twosocket"), s).Environment(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The host records them as "rapl.<fact>": the plugin's own keys carry no prefix.
	for k, v := range map[string]string{"zones": "9", "control_types": "intel-rapl", "skipped_zones": "intel-rapl:0:9,intel-rapl:x",
		"duplicate_zones_dropped": "intel-rapl-mmio:0", "sysfs_root": "/sys"} {
		if env.Facts[k] != v {
			t.Errorf("fact %s = %q, want %q", k, env.Facts[k], v)
		}
	}
	for k := range env.Facts {
		if strings.HasPrefix(k, "rapl.") {
			t.Errorf("fact %q carries the plugin's name, which the host adds (it would read rapl.%s)", k, k)
		}
	}
	if len(env.Devices) != 9 {
		t.Fatalf("%d devices, want 9", len(env.Devices))
	}
	pkg := env.Devices[0]
	for k, v := range map[string]string{"name": "package-0", "max_energy_range_uj": "262143328850", "max_power_w": "180",
		"max_power_source": "constraint files", "constraint_0_name": "long_term", "constraint_0_power_limit_w": "150",
		"constraint_1_power_limit_w": "180", "wrap_period_at_max_power": "24m16.352s", "poll_bound": "12m8.176s",
		"path": "/sys/class/powercap/intel-rapl:0"} {
		if pkg.ID != "rapl:intel-rapl:0" || pkg.Facts[k] != v {
			t.Errorf("%s fact %s = %q, want %q", pkg.ID, k, pkg.Facts[k], v)
		}
	}
	for _, d := range env.Devices {
		if d.ID == "rapl:intel-rapl:1:1" && d.Facts["max_energy_range_uj"] != "unknown" {
			t.Errorf("uncore without range: %v", d.Facts)
		}
		if d.ID == "rapl:intel-rapl:0:2" && !strings.HasPrefix(d.Facts["max_power_source"], "assumed") {
			t.Errorf("dram max power source %q", d.Facts["max_power_source"])
		}
	}

	env, err = newTestMeter(fstest.MapFS{}, s).Environment(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(env.Facts["problem"], "no /sys/class/powercap") || len(env.Devices) != 0 {
		t.Errorf("no powercap: %+v", env)
	}
}

// sessionTree is one package zone (1 kJ range, 500 W max) and one dram zone without a range.
func sessionTree() *memFS {
	return &memFS{m: fstest.MapFS{
		"class/powercap/intel-rapl:0/name":                        {Data: []byte("package-0\n")},
		"class/powercap/intel-rapl:0/energy_uj":                   {Data: []byte("999000000\n")},
		"class/powercap/intel-rapl:0/max_energy_range_uj":         {Data: []byte("1000000000\n")},
		"class/powercap/intel-rapl:0/constraint_0_max_power_uw":   {Data: []byte("500000000\n")},
		"class/powercap/intel-rapl:0/constraint_0_power_limit_uw": {Data: []byte("200000000\n")},
		"class/powercap/intel-rapl:0:0/name":                      {Data: []byte("dram\n")},
		"class/powercap/intel-rapl:0:0/energy_uj":                 {Data: []byte("7000000\n")},
		"class/powercap/intel-rapl:0:1/name":                      {Data: []byte("core\n")},
		"class/powercap/intel-rapl:0:1/energy_uj":                 {Data: []byte("1000\n")},
		"class/powercap/intel-rapl:0:1/max_energy_range_uj":       {Data: []byte("1000000000\n")},
	}}
}

// TestSessionWrapAndReset drives a session by hand: the counters change only between the reads
// that Start, Mark and Stop force (the background tick is 1 s and finds the same values), so the
// energy is exact.
func TestSessionWrapAndReset(t *testing.T) {
	mem := sessionTree()
	denied := false
	fsys := faultFS{mem, func(name string) error {
		if denied && name == "class/powercap/intel-rapl:0:1/energy_uj" {
			return fs.ErrPermission
		}
		return nil
	}}
	s := DefaultSettings()
	s.Root, s.Interval = "/sys", time.Hour
	m := newTestMeter(fsys, s)
	ctx := context.Background()
	sess, err := m.Start(ctx, sdk.StartRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// 1 kJ at 500 W wraps after 2 s: at least every second.
	if sess.Interval != time.Second {
		t.Errorf("interval %v, want 1s (the package's poll bound)", sess.Interval)
	}
	if got := strings.Join(ids(sess.Domains), " "); got != "rapl:intel-rapl:0 rapl:intel-rapl:0:0 rapl:intel-rapl:0:1" {
		t.Errorf("session domains %s", got)
	}
	denied = true // core becomes root-only after the first read
	const pkg, dram = "class/powercap/intel-rapl:0/energy_uj", "class/powercap/intel-rapl:0:0/energy_uj"
	steps := []struct {
		pkg, dram string
	}{
		{"2000000", "8000000"},   // package wraps: 1 J to the range + 2 J; dram +1 J
		{"5000000", "9000000"},   // +3 J, +1 J
		{"1000000", "9500000"},   // package reset to 1 J: not counted; dram +0.5 J
		{"3000000", "2000000"},   // +2 J; dram goes backwards without a range: a reset, not counted
		{"4000000", "2500000"},   // +1 J, +0.5 J
		{"4000000", "2500000"},   // unchanged
		{"999999999", "2600000"}, // package jumps 996 J in milliseconds: above 500 W, a reset
	}
	for i, st := range steps {
		mem.set(pkg, st.pkg)
		mem.set(dram, st.dram)
		if _, err := m.Mark(ctx, sess.ID, "step"); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	meas, err := m.Stop(ctx, sess.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(meas.Marks) != len(steps) {
		t.Errorf("%d marks, want %d", len(meas.Marks), len(steps))
	}
	want := map[string]units.Energy{
		"rapl:intel-rapl:0":   1000001 + 2000000 + 3000000 + 2000000 + 1000000, // the range is 1e9 µJ + 1
		"rapl:intel-rapl:0:0": 1000000 + 1000000 + 500000 + 500000 + 100000,
	}
	resets := map[string]int{}
	for _, f := range meas.Findings {
		if f.Code == "counter_reset" {
			resets[f.Domain]++
		}
	}
	if resets["rapl:intel-rapl:0"] != 2 || resets["rapl:intel-rapl:0:0"] != 1 {
		t.Errorf("counter_reset findings per domain %v, want package 2, dram 1", resets)
	}
	for _, d := range meas.Domains {
		if d.Domain.ID == "rapl:intel-rapl:0:1" {
			if d.Domain.Available || !strings.Contains(d.Domain.Reason, "CVE-2020-8694") {
				t.Errorf("core after losing permission: available=%v reason %q", d.Domain.Available, d.Domain.Reason)
			}
			continue
		}
		if !d.Domain.Available {
			t.Errorf("%s unavailable: %s", d.Domain.ID, d.Domain.Reason)
			continue
		}
		if d.Energy != want[d.Domain.ID] {
			t.Errorf("%s energy %d µJ, want %d", d.Domain.ID, d.Energy, want[d.Domain.ID])
		}
		for i := 1; i < len(d.Samples); i++ {
			if d.Samples[i].Energy < d.Samples[i-1].Energy || d.Samples[i].MonoNS < d.Samples[i-1].MonoNS {
				t.Errorf("%s: sample %d goes backwards", d.Domain.ID, i)
			}
		}
	}
	infos := map[string]bool{}
	for _, f := range meas.Findings {
		infos[f.Code] = true
	}
	for _, c := range []string{"interval_shortened", "max_power_assumed", "zone_problem"} {
		if !infos[c] {
			t.Errorf("no %s finding in %+v", c, meas.Findings)
		}
	}
}

func TestSessionWithoutRAPL(t *testing.T) {
	s := DefaultSettings()
	s.Root, s.Interval = "/sys", 5*time.Millisecond
	m := newTestMeter(fstest.MapFS{}, s)
	ctx := context.Background()
	sess, err := m.Start(ctx, sdk.StartRequest{})
	if err != nil {
		t.Fatalf("Start without RAPL must still open a session: %v", err)
	}
	if len(sess.Domains) != 1 || sess.Domains[0].Available || sess.Domains[0].Reason == "" {
		t.Fatalf("session domains %+v", sess.Domains)
	}
	time.Sleep(20 * time.Millisecond)
	meas, err := m.Stop(ctx, sess.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(meas.Domains) != 1 {
		t.Fatalf("%d domains", len(meas.Domains))
	}
	d := meas.Domains[0]
	if d.Domain.Available || !strings.Contains(d.Domain.Reason, "no /sys/class/powercap") || d.Energy != 0 || len(d.Samples) != 0 {
		t.Errorf("measurement without RAPL: %+v", d)
	}
	if _, err := m.Start(ctx, sdk.StartRequest{Domains: []string{"rapl:intel-rapl:0"}}); !errors.Is(err, sdk.ErrInvalidArgument) {
		t.Errorf("asking for a zone on a host without RAPL: %v, want ErrInvalidArgument", err)
	}
}

func TestStartDomains(t *testing.T) {
	s := DefaultSettings()
	s.Root = "/sys"
	m := newTestMeter(loadTree(t, "twosocket"), s)
	ctx := context.Background()
	tests := []struct {
		name     string
		req      sdk.StartRequest
		want     string
		interval time.Duration
		err      error
		errHas   string
	}{
		{name: "default is every zone", req: sdk.StartRequest{}, interval: DefaultInterval,
			want: "rapl:intel-rapl:0 rapl:intel-rapl:0:0 rapl:intel-rapl:0:1 rapl:intel-rapl:0:2 rapl:intel-rapl:1 rapl:intel-rapl:1:0 rapl:intel-rapl:1:1 rapl:intel-rapl:1:2 rapl:intel-rapl:2"},
		{name: "requested domains and interval", req: sdk.StartRequest{Domains: []string{"rapl:intel-rapl:1", "rapl:intel-rapl:0:2", "rapl:intel-rapl:1"}, Interval: 10 * time.Millisecond},
			want: "rapl:intel-rapl:0:2 rapl:intel-rapl:1", interval: 10 * time.Millisecond}, // once each, inventory order
		{name: "too short is raised to the update period", req: sdk.StartRequest{Interval: time.Microsecond, Domains: []string{"rapl:intel-rapl:1"}},
			want: "rapl:intel-rapl:1", interval: MinInterval},
		{name: "negative interval", req: sdk.StartRequest{Interval: -time.Second}, err: sdk.ErrInvalidArgument},
		// dram: 65712999613 µJ at the assumed 500 W wraps after 131 s.
		{name: "interval bounded by the fastest-wrapping zone", req: sdk.StartRequest{Interval: time.Hour, Domains: []string{"rapl:intel-rapl:0:2"}},
			want: "rapl:intel-rapl:0:2", interval: 65712999613 * time.Microsecond / 500 / 2},
		{name: "unknown domain", req: sdk.StartRequest{Domains: []string{"rapl:intel-rapl:7"}}, err: sdk.ErrInvalidArgument,
			errHas: `domain "rapl:intel-rapl:7": invalid argument: not a domain of this meter (valid: rapl:intel-rapl:0, rapl:intel-rapl:0:0`},
		{name: "dropped duplicate", req: sdk.StartRequest{Domains: []string{"rapl:intel-rapl-mmio:0"}}, err: sdk.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sess, err := m.Start(ctx, tc.req)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("Start: %v, want %v with %q", err, tc.err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer m.Stop(ctx, sess.ID)
			if got := strings.Join(ids(sess.Domains), " "); got != tc.want {
				t.Errorf("domains %s, want %s", got, tc.want)
			}
			if d := sess.Interval - tc.interval; d < -time.Microsecond || d > time.Microsecond {
				t.Errorf("interval %v, want %v", sess.Interval, tc.interval)
			}
		})
	}
}

// TestRealDirectory reads a fixture written to disk through os.DirFS, the way the plugin reads
// /sys.
func TestRealDirectory(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, loadTree(t, "twosocket"), dir)
	m := NewMeter(Options{Logger: hclog.NewNullLogger()})
	s := DefaultSettings()
	s.Root = dir
	m.SetSettings(s)
	doms, err := m.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(doms) != 9 || !doms[0].Available || doms[5].Available {
		t.Fatalf("domains %+v", doms)
	}
	if want := filepath.Join(dir, "class/powercap/intel-rapl:1:0/energy_uj"); !strings.Contains(doms[5].Reason, want) {
		t.Errorf("reason %q does not name %s", doms[5].Reason, want)
	}
}

// TestWarnings checks that malformed zones, duplicates and assumptions are logged once on the
// logger (stderr in the plugin) and reported as findings of every session.
func TestWarnings(t *testing.T) {
	var buf strings.Builder
	var mu sync.Mutex
	log := hclog.New(&hclog.LoggerOptions{Output: writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), JSONFormat: true})
	m := NewMeter(Options{FS: func(string) fs.FS { return loadTree(t, "twosocket") }, Logger: log})
	ctx := context.Background()
	for range 2 {
		if _, err := m.Inventory(ctx); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, want := range [][]string{
		{`"@level":"warn"`, `"@message":"skipping malformed RAPL zone"`, `"dir":"intel-rapl:x"`, `name is not`},
		{`"@level":"warn"`, `"@message":"skipping malformed RAPL zone"`, `"dir":"intel-rapl:0:9"`, `name: file does not exist`},
		{`"@level":"info"`, `"@message":"dropping RAPL zone that duplicates an intel-rapl zone"`, `"dir":"intel-rapl-mmio:0"`},
		{`"@level":"info"`, `assuming one`, `"assumed_max_power":"500 W"`, `"zone":"rapl:intel-rapl:0:2"`},
		{`"@level":"warn"`, `"@message":"RAPL zone unavailable"`, `"reason":"no /sys/class/powercap/intel-rapl:1:0/energy_uj`},
		{`"@level":"warn"`, `"@message":"RAPL zone problem"`, `"zone":"rapl:intel-rapl:1:1"`, `no usable max_energy_range_uj`},
	} {
		n := 0
		for _, l := range lines {
			all := true
			for _, w := range want {
				all = all && strings.Contains(l, w)
			}
			if all {
				n++
			}
		}
		if n != 1 {
			t.Errorf("log has a line with %q %d times, want once:\n%s", want, n, out)
		}
	}
	for _, l := range lines {
		if strings.Contains(l, "assuming one") && strings.Contains(l, `"zone":"rapl:intel-rapl:1:0"`) {
			t.Errorf("max power assumption logged for an unavailable zone: %s", l)
		}
	}

	sess, err := m.Start(ctx, sdk.StartRequest{Domains: []string{"rapl:intel-rapl:0"}})
	if err != nil {
		t.Fatal(err)
	}
	meas, err := m.Stop(ctx, sess.ID)
	if err != nil {
		t.Fatal(err)
	}
	var skipped []string
	for _, f := range meas.Findings {
		if f.Code == "zone_skipped" {
			if f.Severity != sdk.SeverityInfo {
				t.Errorf("zone_skipped severity %s", f.Severity)
			}
			skipped = append(skipped, f.Message)
		}
	}
	if len(skipped) != 2 || !strings.Contains(skipped[0], "intel-rapl:0:9") || !strings.Contains(skipped[1], "intel-rapl:x") {
		t.Errorf("zone_skipped findings %q", skipped)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
