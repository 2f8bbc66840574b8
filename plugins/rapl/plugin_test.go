package rapl

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/plugintest"
	"github.com/lemctl/lemctl/sdk/units"
)

func TestConfigure(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		table   map[string]any
		errKeys []string // keys with an error, in order
		want    Settings // when no error
	}{
		{name: "defaults", table: map[string]any{}, want: DefaultSettings()},
		{name: "everything set", table: map[string]any{"sysfs_root": dir + "/", "interval": "20ms", "zones": []any{"package", "rapl:intel-rapl:0:2", "package-1/dram"}, "assumed_max_power_w": 350.0},
			want: Settings{Root: dir, Interval: 20 * time.Millisecond, Zones: []string{"package", "rapl:intel-rapl:0:2", "package-1/dram"}, AssumedMaxPower: 350 * units.Watt}},
		{name: "relative root", table: map[string]any{"sysfs_root": "sys"}, errKeys: []string{"sysfs_root"}},
		{name: "missing root", table: map[string]any{"sysfs_root": filepath.Join(dir, "nope")}, errKeys: []string{"sysfs_root"}},
		{name: "root is a file", table: map[string]any{"sysfs_root": file}, errKeys: []string{"sysfs_root"}},
		{name: "interval below the update period", table: map[string]any{"interval": "100us"}, errKeys: []string{"interval"}},
		{name: "interval not a duration", table: map[string]any{"interval": "fast"}, errKeys: []string{"interval"}},
		{name: "bad zone entries", table: map[string]any{"zones": []any{"Package 0", "dram"}}, errKeys: []string{"zones"}},
		{name: "zero max power", table: map[string]any{"assumed_max_power_w": 0.0}, errKeys: []string{"assumed_max_power_w"}},
		{name: "unknown key", table: map[string]any{"sysfs": "/sys"}, errKeys: []string{"sysfs"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMeter(Options{Logger: hclog.NewNullLogger()})
			before := m.Settings()
			cfg, errs := sdk.ValidateConfig(Schema(), tc.table)
			if len(errs) == 0 {
				var err error
				errs, err = m.Configure(context.Background(), cfg)
				if err != nil {
					t.Fatal(err)
				}
			}
			var keys []string
			for _, e := range errs {
				keys = append(keys, e.Key)
				if e.Message == "" || e.Valid == "" {
					t.Errorf("error without message or valid values: %+v", e)
				}
			}
			if !slices.Equal(keys, tc.errKeys) {
				t.Fatalf("errors on %v (%v), want on %v", keys, errs, tc.errKeys)
			}
			got := m.Settings()
			if len(errs) > 0 {
				tc.want = before // a rejected table changes nothing
			}
			if got.Root != tc.want.Root || got.Interval != tc.want.Interval || got.AssumedMaxPower != tc.want.AssumedMaxPower || !slices.Equal(got.Zones, tc.want.Zones) {
				t.Errorf("settings %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestConformance runs the sdk's conformance suite on the plugin over in-process gRPC: once on
// the two-socket fixture (domains available) and once on a root without powercap (the one
// domain unavailable, sessions still work).
func TestConformance(t *testing.T) {
	withZones := t.TempDir()
	writeTree(t, loadTree(t, "twosocket"), withZones)
	bad := []plugintest.BadConfig{
		{Table: map[string]any{"sysfs_root": "relative/path"}, Key: "sysfs_root"},
		{Table: map[string]any{"zones": []any{"not a zone"}}, Key: "zones"},
		{Table: map[string]any{"interval": "1ns"}, Key: "interval"},
	}
	for _, tc := range []struct {
		name      string
		root      string
		available bool
	}{
		{"fixture tree", withZones, true},
		{"no powercap", t.TempDir(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plugintest.Run(t, NewPlugin(hclog.NewNullLogger()), plugintest.Options{
				Config:     map[string]any{"sysfs_root": tc.root, "interval": "10ms"},
				BadConfigs: bad,
				Energy:     plugintest.EnergyOptions{Session: 100 * time.Millisecond, RequireAvailable: tc.available},
			})
		})
	}
}

func TestPluginInfo(t *testing.T) {
	p := NewPlugin(hclog.NewNullLogger())
	info := p.Info()
	if info.Name != "rapl" || !slices.Equal(info.Kinds, []sdk.Kind{sdk.KindEnergy}) {
		t.Errorf("info %+v", info)
	}
	var keys []string
	for _, k := range info.ConfigSchema {
		keys = append(keys, k.Key)
		if k.Doc == "" {
			t.Errorf("key %s has no doc", k.Key)
		}
	}
	if got := strings.Join(keys, ","); got != "sysfs_root,interval,zones,assumed_max_power_w" {
		t.Errorf("schema keys %s", got)
	}
}
