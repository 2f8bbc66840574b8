package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/plugins/rapl/internal/fakesys"
)

func TestParseZone(t *testing.T) {
	tests := []struct {
		in   string
		want fakesys.Zone
		err  string
	}{
		{in: "intel-rapl:0=package-0,50,262143328850", want: fakesys.Zone{Dir: "intel-rapl:0", Name: "package-0", Watts: 50, Range: 262143328850}},
		{in: "intel-rapl:0:0=dram,2.5,1000,20000000,7", want: fakesys.Zone{Dir: "intel-rapl:0:0", Name: "dram", Watts: 2.5, Range: 1000, MaxPower: 20000000, Start: 7}},
		{in: "intel-rapl:0=package-0,50", err: "want DIR=NAME"},
		{in: "package-0,50,100", err: "want DIR=NAME"},
		{in: "intel-rapl:0=package-0,-1,100", err: "not a non-negative number"},
		{in: "intel-rapl:0=package-0,5,1e9", err: "not a whole number"},
		{in: "intel-rapl:0=package-0,5,0", err: "range must be positive"},
	}
	for _, tc := range tests {
		got, err := parseZone(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseZone(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseZone(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestRunWritesTree(t *testing.T) {
	root := t.TempDir()
	if err := run([]string{"-root", root, "-duration", "30ms"}); err != nil {
		t.Fatal(err)
	}
	for _, z := range []struct{ dir, name string }{{"intel-rapl:0", "package-0"}, {"intel-rapl:0:0", "dram"}} {
		dir := filepath.Join(root, "class", "powercap", z.dir)
		name, err := os.ReadFile(filepath.Join(dir, "name"))
		if err != nil || strings.TrimSpace(string(name)) != z.name {
			t.Errorf("%s name %q, %v", z.dir, name, err)
		}
		b, err := os.ReadFile(filepath.Join(dir, "energy_uj"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err != nil {
			t.Errorf("%s energy_uj %q: %v", z.dir, b, err)
		}
	}
	if err := run([]string{"-zone", "x=y,1,2"}); err == nil {
		t.Error("run without -root succeeded")
	}
}
