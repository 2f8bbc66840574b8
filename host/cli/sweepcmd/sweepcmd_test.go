package sweepcmd

import (
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/study"
)

// parse runs `lemctl sweep ARGS…` up to its options: runF records them and nothing starts.
func parse(t *testing.T, args ...string) (*Options, error) {
	t.Helper()
	var got *Options
	cmd := NewCmdSweep(&cliutil.Factory{}, func(o *Options) error { got = o; return nil })
	cmd.SetArgs(args)
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	err := cmd.Execute()
	return got, err
}

func TestOptionsParsing(t *testing.T) {
	o, err := parse(t, "s.toml", "--dry-run", "--progress", "json", "-o", "json")
	if err != nil || o.File != "s.toml" || !o.DryRun || o.Progress != "json" || o.Output != "json" || o.Resume != "" {
		t.Fatalf("options %+v, %v", o, err)
	}
	o, err = parse(t, "--resume", "20261203T000000Z-s-abcdef")
	if err != nil || o.Resume != "20261203T000000Z-s-abcdef" || o.File != "" || o.Progress != "text" || o.Output != "table" {
		t.Fatalf("resume options %+v, %v", o, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "needs a study file"},
		{[]string{"s.toml", "--resume", "x"}, "not both"},
		{[]string{"s.toml", "--progress", "loud"}, "--progress"},
	} {
		_, err := parse(t, tc.args...)
		if cliutil.CodeOf(err) != cliutil.ExitUsage || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v (exit %d), want a usage error with %q", tc.args, err, cliutil.CodeOf(err), tc.want)
		}
	}
}

// The example study parses: its base exists and its grid has the three batch sizes.
func TestExampleStudyParses(t *testing.T) {
	f, _, err := study.ReadFile("../../../examples/studies/batch-size.toml")
	if err != nil {
		t.Fatal(err)
	}
	pts := f.PointList()
	if len(pts) != 3 || pts[2].Label() != "workload.batch_size=16" || f.Cycles != 3 || f.Order != study.OrderInterleaved {
		t.Errorf("example study: %d points %v, cycles %d, order %s", len(pts), pts, f.Cycles, f.Order)
	}
}
