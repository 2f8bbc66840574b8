package datasetscmd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/cli/datasetscmd"
	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/dataset"
)

func execute(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := datasetscmd.NewCommand(&cliutil.Factory{Out: &out, Err: &errb})
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	code := cliutil.CodeOf(cmd.ExecuteContext(context.Background()))
	return out.String(), errb.String(), code
}

func TestList(t *testing.T) {
	out, _, code := execute(t)
	b := dataset.Builtin("builtin")
	if code != 0 {
		t.Fatal(code)
	}
	for _, want := range []string{"builtin", b.SHA256, "synthetic:<input_tokens>", "jsonl", "alpaca", "sharegpt", "text"} {
		if !strings.Contains(out, want) {
			t.Errorf("listing lacks %q:\n%s", want, out)
		}
	}
	out, _, code = execute(t, "-o", "json")
	var l datasetscmd.Listing
	if code != 0 || json.Unmarshal([]byte(out), &l) != nil || len(l.Builtin) != 1 || l.Builtin[0].Prompts != b.Count || len(l.Formats) != 4 {
		t.Errorf("json listing (exit %d): %s", code, out)
	}
}

func TestInspect(t *testing.T) {
	out, _, code := execute(t, "../../dataset/testdata/prompts.jsonl", "-o", "json")
	var in datasetscmd.Inspection
	if code != 0 || json.Unmarshal([]byte(out), &in) != nil || in.Prompts != 5 || in.Skipped != 4 || in.Format != "jsonl" {
		t.Errorf("inspect (exit %d): %s", code, out)
	}
	out, _, code = execute(t, "builtin")
	if code != 0 || !strings.Contains(out, "version") || !strings.Contains(out, "skipped  0") {
		t.Errorf("inspect builtin (exit %d):\n%s", code, out)
	}
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"missing.jsonl"}, cliutil.ExitUsage},
		{[]string{"synthetic:64"}, cliutil.ExitUsage},
		{[]string{"-o", "yaml"}, cliutil.ExitUsage},
		{[]string{"../../dataset/testdata/malformed.jsonl"}, cliutil.ExitFailed},
	} {
		if _, _, code := execute(t, tc.args...); code != tc.code {
			t.Errorf("%v: exit %d, want %d", tc.args, code, tc.code)
		}
	}
}

func TestInspectCountsNonUTF8Prompts(t *testing.T) {
	file := t.TempDir() + "/bad.txt"
	if err := os.WriteFile(file, []byte("fine\ncaf\xe9\n\xff\xfe twice\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, code := execute(t, file, "-o", "json")
	var in datasetscmd.Inspection
	if code != 0 || json.Unmarshal([]byte(out), &in) != nil || in.Prompts != 3 || in.NonUTF8 != 2 {
		t.Errorf("inspect (exit %d): %s; want 3 prompts, 2 with bytes replaced", code, out)
	}
	out, _, _ = execute(t, file)
	if !strings.Contains(out, "utf-8    2 prompts with bytes that are not UTF-8, replaced by U+FFFD") {
		t.Errorf("table lacks the non-UTF-8 count:\n%s", out)
	}
}
