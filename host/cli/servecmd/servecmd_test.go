package servecmd

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/lemctl/lemctl/host/cliutil"
)

func TestFlags(t *testing.T) {
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"exp.toml", "--max-batch", "0"}, cliutil.ExitUsage, "--max-batch 0"},
		{[]string{"exp.toml", "--max-queue", "-1"}, cliutil.ExitUsage, "--max-queue -1"},
		{[]string{"exp.toml", "--grace", "-1s"}, cliutil.ExitUsage, "--grace -1s"},
	}
	for _, c := range cases {
		cmd := NewCmdServe(&cliutil.Factory{Out: io.Discard, Err: io.Discard}, func(*Options) error { t.Fatal("ran with bad flags"); return nil })
		cmd.SetArgs(c.args)
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		err := cmd.Execute()
		if cliutil.CodeOf(err) != c.code || err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%v: %v (exit %d), want exit %d naming %q", c.args, err, cliutil.CodeOf(err), c.code, c.msg)
		}
	}
	var got *Options
	cmd := NewCmdServe(&cliutil.Factory{}, func(o *Options) error { got = o; return nil })
	cmd.SetArgs([]string{"exp.toml", "--set", "model.ref=\"x\""})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.File != "exp.toml" || got.Addr != "127.0.0.1:8000" || got.MaxBatch != 8 || got.MaxQueue != 256 || got.Grace != 10*time.Second || len(got.Set) != 1 {
		t.Errorf("defaults: %+v", got)
	}
}
