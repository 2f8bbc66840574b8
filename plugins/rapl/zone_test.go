package rapl

import (
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/units"
)

// zoneWant is what a test expects of one zone.
type zoneWant struct {
	dir, label, kind, scope string
	available               bool
	maxRange                units.Energy
	maxPower                units.Power
	assumed                 bool
	reason, note, ignored   string // substrings; "" means none expected
}

func TestScanZones(t *testing.T) {
	const fullRange, dramRange = units.Energy(262143328850), units.Energy(65712999613)
	twoSocket := []zoneWant{
		{dir: "intel-rapl:0", label: "package-0", kind: sdk.DomainPackage, scope: sdk.ScopeSocket, available: true, maxRange: fullRange, maxPower: 180 * units.Watt},
		{dir: "intel-rapl:0:0", label: "package-0/core", kind: sdk.DomainCore, scope: sdk.ScopeSocket, available: true, maxRange: fullRange, maxPower: DefaultAssumedMaxPower, assumed: true},
		{dir: "intel-rapl:0:1", label: "package-0/uncore", kind: sdk.DomainUncore, scope: sdk.ScopeSocket, available: true, maxRange: fullRange, maxPower: DefaultAssumedMaxPower, assumed: true},
		{dir: "intel-rapl:0:2", label: "package-0/dram", kind: sdk.DomainDRAM, scope: sdk.ScopeSocket, available: true, maxRange: dramRange, maxPower: DefaultAssumedMaxPower, assumed: true},
		{dir: "intel-rapl:1", label: "package-1", kind: sdk.DomainPackage, scope: sdk.ScopeSocket, available: true, maxRange: fullRange, maxPower: 165 * units.Watt},
		{dir: "intel-rapl:1:0", label: "package-1/core", kind: sdk.DomainCore, scope: sdk.ScopeSocket, maxRange: fullRange, maxPower: DefaultAssumedMaxPower, assumed: true,
			reason: "no /sys/class/powercap/intel-rapl:1:0/energy_uj: this zone exposes no energy counter"},
		{dir: "intel-rapl:1:1", label: "package-1/uncore", kind: sdk.DomainUncore, scope: sdk.ScopeSocket, available: true, maxPower: DefaultAssumedMaxPower, assumed: true,
			note: "no usable max_energy_range_uj"},
		{dir: "intel-rapl:1:2", label: "package-1/dram", kind: sdk.DomainDRAM, scope: sdk.ScopeSocket, available: true, maxRange: dramRange, maxPower: DefaultAssumedMaxPower, assumed: true},
		{dir: "intel-rapl:2", label: "psys", kind: sdk.DomainPsys, scope: sdk.ScopeNode, available: true, maxRange: fullRange, maxPower: 400 * units.Watt,
			ignored: "constraint 1 (short_term) states 1e+05 kW, above the plausible 10 kW: ignored"},
	}
	denied := func(ws []zoneWant) []zoneWant {
		out := slices.Clone(ws)
		for i := range out {
			if out[i].available {
				out[i].available = false
				out[i].reason = "permission denied reading /sys/class/powercap/" + out[i].dir + "/energy_uj; energy_uj is readable only by root since CVE-2020-8694"
			}
		}
		return out
	}
	twoSocketSkipped := []string{"intel-rapl:0:9", "intel-rapl:x"}

	tests := []struct {
		name       string
		fsys       fs.FS
		assumed    units.Power
		zones      []zoneWant
		skipped    []string
		duplicates []string
		problem    string
	}{
		{name: "two sockets with subzones, mmio duplicate and broken zones", fsys: loadTree(t, "twosocket"),
			zones: twoSocket, skipped: twoSocketSkipped, duplicates: []string{"intel-rapl-mmio:0"}},
		{name: "assumed max power is the configured one", fsys: loadTree(t, "twosocket"), assumed: 300 * units.Watt,
			zones: func() []zoneWant {
				out := slices.Clone(twoSocket)
				for i := range out {
					if out[i].assumed {
						out[i].maxPower = 300 * units.Watt
					}
				}
				return out
			}(), skipped: twoSocketSkipped, duplicates: []string{"intel-rapl-mmio:0"}},
		{name: "energy_uj root-only (CVE-2020-8694)", fsys: faultFS{loadTree(t, "twosocket"), denyEnergy()},
			zones: denied(twoSocket), skipped: twoSocketSkipped, duplicates: []string{"intel-rapl-mmio:0"}},
		{name: "one zone denied", fsys: faultFS{loadTree(t, "twosocket"), denyEnergy("intel-rapl:0:2")},
			zones: func() []zoneWant {
				out := slices.Clone(twoSocket)
				out[3].available = false
				out[3].reason = "permission denied reading /sys/class/powercap/intel-rapl:0:2/energy_uj; energy_uj is readable only by root"
				return out
			}(), skipped: twoSocketSkipped, duplicates: []string{"intel-rapl-mmio:0"}},
		{name: "mmio zone without an intel-rapl twin is kept", fsys: loadTree(t, "mmioonly"),
			zones: []zoneWant{
				{dir: "intel-rapl:1", label: "psys", kind: sdk.DomainPsys, scope: sdk.ScopeNode, available: true, maxRange: fullRange, maxPower: DefaultAssumedMaxPower, assumed: true},
				{dir: "intel-rapl-mmio:0", label: "package-0", kind: sdk.DomainPackage, scope: sdk.ScopeSocket, available: true, maxRange: fullRange, maxPower: 28 * units.Watt},
			}},
		{name: "no powercap directory", fsys: fstest.MapFS{"class/net/lo/mtu": {Data: []byte("65536\n")}},
			problem: "no /sys/class/powercap: this kernel exposes no powercap interface"},
		{name: "powercap without RAPL zones", fsys: loadTree(t, "nozones"),
			problem: "no RAPL zones under /sys/class/powercap: load the RAPL driver"},
		{name: "powercap not listable", fsys: faultFS{loadTree(t, "twosocket"), func(n string) error {
			if n == PowercapDir {
				return fs.ErrPermission
			}
			return nil
		}}, problem: "permission denied listing /sys/class/powercap"},
		{name: "only malformed zones", fsys: fstest.MapFS{
			"class/powercap/intel-rapl:zz/name":      {Data: []byte("package-0\n")},
			"class/powercap/intel-rapl:0/energy_uj":  {Data: []byte("1\n")},
			"class/powercap/intel-rapl:1/name":       {Data: []byte("\n")},
			"class/powercap/intel-rapl:1/energy_uj":  {Data: []byte("1\n")},
			"class/powercap/intel-rapl/enabled":      {Data: []byte("1\n")},
			"class/powercap/intel-rapl:0/constraint": {Data: []byte("x\n")},
		}, skipped: []string{"intel-rapl:0", "intel-rapl:1", "intel-rapl:zz"},
			problem: "(3 malformed zone directories were skipped)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assumed := tc.assumed
			if assumed == 0 {
				assumed = DefaultAssumedMaxPower
			}
			sc := ScanZones(tc.fsys, "/sys", assumed)
			if tc.problem == "" && sc.Problem != "" {
				t.Errorf("problem %q, want none", sc.Problem)
			}
			if !strings.Contains(sc.Problem, tc.problem) {
				t.Errorf("problem %q, want it to contain %q", sc.Problem, tc.problem)
			}
			var skipped []string
			for _, s := range sc.Skipped {
				skipped = append(skipped, s.Dir)
				if !strings.Contains(s.Reason, s.Dir) {
					t.Errorf("skip reason %q does not name %s", s.Reason, s.Dir)
				}
			}
			if !slices.Equal(skipped, tc.skipped) {
				t.Errorf("skipped %v, want %v", skipped, tc.skipped)
			}
			if !slices.Equal(sc.Duplicates, tc.duplicates) {
				t.Errorf("duplicates %v, want %v", sc.Duplicates, tc.duplicates)
			}
			if len(sc.Zones) != len(tc.zones) {
				var got []string
				for _, z := range sc.Zones {
					got = append(got, z.Dir)
				}
				t.Fatalf("zones %v, want %d", got, len(tc.zones))
			}
			for i, w := range tc.zones {
				z := sc.Zones[i]
				if z.Dir != w.dir || z.Label != w.label || z.Kind != w.kind || z.Scope != w.scope || z.Available != w.available ||
					z.MaxRange != w.maxRange || z.MaxPower != w.maxPower || z.MaxPowerAssumed != w.assumed {
					t.Errorf("zone %d = {%s %s %s %s avail=%v range=%d power=%s assumed=%v}, want %+v", i,
						z.Dir, z.Label, z.Kind, z.Scope, z.Available, z.MaxRange, z.MaxPower, z.MaxPowerAssumed, w)
				}
				if (w.reason == "") != (z.Reason == "") || !strings.Contains(z.Reason, w.reason) {
					t.Errorf("zone %s reason %q, want it to contain %q", z.Dir, z.Reason, w.reason)
				}
				if w.reason != "" && strings.Contains(w.reason, "permission") {
					for _, fix := range []string{"setcap cap_dac_read_search+ep", "udev", "chmod a+r", "root"} {
						if !strings.Contains(z.Reason, fix) {
							t.Errorf("zone %s permission reason lacks the fix %q: %s", z.Dir, fix, z.Reason)
						}
					}
				}
				notes := strings.Join(z.Notes, "; ")
				if (w.note == "") != (notes == "") || !strings.Contains(notes, w.note) {
					t.Errorf("zone %s notes %q, want %q", z.Dir, notes, w.note)
				}
				ignored := strings.Join(z.Ignored, "; ")
				if (w.ignored == "") != (ignored == "") || !strings.Contains(ignored, w.ignored) {
					t.Errorf("zone %s ignored constraints %q, want %q", z.Dir, ignored, w.ignored)
				}
				if d := z.Domain(); d.ID != "rapl:"+w.dir || d.Method != sdk.MethodCounter || d.Resolution != units.Microjoule ||
					d.UpdatePeriod != UpdatePeriod || d.Available != w.available || d.Name != w.label {
					t.Errorf("zone %s domain %+v", z.Dir, d)
				}
			}
		})
	}
}

func TestScanZonesConstraints(t *testing.T) {
	sc := ScanZones(loadTree(t, "twosocket"), "/sys", DefaultAssumedMaxPower)
	z := sc.Zones[0]
	want := []Constraint{
		{Index: 0, Name: "long_term", PowerLimit: 150 * units.Watt, MaxPower: 150 * units.Watt, TimeWindow: 999424 * 1000},
		{Index: 1, Name: "short_term", PowerLimit: 180 * units.Watt, TimeWindow: 2440 * 1000},
	}
	if !slices.Equal(z.Constraints, want) {
		t.Errorf("constraints %+v, want %+v", z.Constraints, want)
	}
	// 262143328850 µJ at 180 W wraps after 1456 s: poll at least every 728 s.
	if got := z.PollBound().Round(1e9); got != 728e9 {
		t.Errorf("poll bound %v, want 12m8s", got)
	}
}

func TestKindOf(t *testing.T) {
	tests := []struct{ name, kind, scope string }{
		{"package-0", sdk.DomainPackage, sdk.ScopeSocket},
		{"package-12", sdk.DomainPackage, sdk.ScopeSocket},
		{"package-0-die-1", sdk.DomainPackage, sdk.ScopeSocket},
		{"dram", sdk.DomainDRAM, sdk.ScopeSocket},
		{"core", sdk.DomainCore, sdk.ScopeSocket},
		{"uncore", sdk.DomainUncore, sdk.ScopeSocket},
		{"psys", sdk.DomainPsys, sdk.ScopeNode},
		{"package", sdk.DomainOther, sdk.ScopeSocket},
		{"gpu", sdk.DomainOther, sdk.ScopeSocket},
	}
	for _, tc := range tests {
		if k, s := kindOf(tc.name); k != tc.kind || s != tc.scope {
			t.Errorf("kindOf(%q) = %s, %s; want %s, %s", tc.name, k, s, tc.kind, tc.scope)
		}
	}
}
