package runcmd

import (
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/cliutil"
)

// parse runs `lemctl run ARGS…` up to its options: runF records them and nothing starts.
func parse(t *testing.T, args ...string) (*Options, error) {
	t.Helper()
	var got *Options
	cmd := NewCmdRun(&cliutil.Factory{}, func(o *Options) error { got = o; return nil })
	cmd.SetArgs(args)
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	err := cmd.Execute()
	return got, err
}

func TestOptionsParsing(t *testing.T) {
	o, err := parse(t, "exp.toml", "-n", "12", "--set", "workload.batch_size=4", "--set", `engine.provider="cpu"`,
		"-d", "synthetic:32", "--no-aggregate", "--progress", "json", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	if o.File != "exp.toml" || o.Prompts == nil || *o.Prompts != 12 || o.Dataset != "synthetic:32" || !o.NoAggregate ||
		o.Progress != "json" || o.Output != "json" {
		t.Fatalf("options %+v (prompts %v)", o, o.Prompts)
	}
	if len(o.Set) != 2 || o.Set[0] != "workload.batch_size=4" || o.Set[1] != `engine.provider="cpu"` {
		t.Fatalf("--set collected %q", o.Set)
	}
	// Without -n the file's workload.prompts stands: Prompts is nil, not 0.
	o, err = parse(t)
	if err != nil || o.File != "" || o.Prompts != nil || o.Progress != "text" || o.Output != "table" {
		t.Fatalf("defaults: %+v, %v", o, err)
	}
	if o, err = parse(t, "-n", "0"); err != nil || o.Prompts == nil || *o.Prompts != 0 {
		t.Fatalf("-n 0 must be kept (the config check refuses it): %+v, %v", o, err)
	}
}

func TestOptionsErrorsNeverRun(t *testing.T) {
	for _, tc := range []struct {
		args []string
		name string // the flag the message must name
	}{
		{[]string{"-o", "yaml"}, "--output"},
		{[]string{"--progress", "loud"}, "--progress"},
		{[]string{"-n", "many"}, "-n"},
		{[]string{"a.toml", "b.toml"}, "accepts at most 1 arg"},
	} {
		o, err := parse(t, tc.args...)
		if o != nil || err == nil || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("run %q: ran %v, error %v; want an error naming %s", tc.args, o != nil, err, tc.name)
		}
		if strings.HasPrefix(tc.name, "-") && cliutil.CodeOf(err) != cliutil.ExitUsage {
			t.Errorf("run %q: exit %d, want %d", tc.args, cliutil.CodeOf(err), cliutil.ExitUsage)
		}
	}
}
