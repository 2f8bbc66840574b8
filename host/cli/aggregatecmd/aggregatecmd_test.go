package aggregatecmd

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/results/resultstest"
	"github.com/lemctl/lemctl/sdk"
)

func fixtures(t *testing.T) *resultstest.Memory {
	t.Helper()
	repo, err := resultstest.LoadTree("../../aggregate/testdata/results")
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

func execute(t *testing.T, repo sdk.Repository, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := NewCommand(&cliutil.Factory{Out: &out, Err: &errb, ResultsDir: "results",
		Repository: func(context.Context) (sdk.Repository, error) { return repo, nil }})
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	if err != nil {
		errb.WriteString(err.Error())
	}
	return out.String(), errb.String(), cliutil.CodeOf(err)
}

func TestAggregate(t *testing.T) {
	repo := fixtures(t)
	out, stderr, code := execute(t, repo, "shared-package")
	if code != 0 || !strings.Contains(out, "1375.000 ± 0.762 J total") {
		t.Fatalf("exit %d, stderr %s, stdout:\n%s", code, stderr, out)
	}
	first, err := repo.LoadAggregated(context.Background(), "shared-package")
	if err != nil {
		t.Fatal(err)
	}
	a, err := results.DecodeAggregated(first)
	if err != nil || a.Aggregation.LemctlVersion == "" || !a.Aggregation.Strict {
		t.Fatalf("aggregate: %+v, %v", a.Aggregation, err)
	}

	_, stderr, code = execute(t, repo, "shared-package")
	if code != 1 || !strings.Contains(stderr, "--force replaces it") {
		t.Errorf("second aggregate without --force: exit %d, %q", code, stderr)
	}
	out, stderr, code = execute(t, repo, "shared-package", "--force", "-o", "json")
	if code != 0 {
		t.Fatalf("--force: exit %d: %s", code, stderr)
	}
	second, _ := repo.LoadAggregated(context.Background(), "shared-package")
	if out != string(second) {
		t.Error("-o json must print the stored aggregate")
	}
	created := regexp.MustCompile(`(?m)^  "created_unix_ns": \d+,?\n`)
	if !bytes.Equal(created.ReplaceAll(first, nil), created.ReplaceAll(second, nil)) {
		t.Error("aggregate --force did not reproduce the aggregate apart from its creation time")
	}
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"strict failure names the missing rank", []string{"missing-rank"}, 1, "missing_rank: rank 1 of 0..2 has no raw result"},
		{"strict failure names the corrupted rank", []string{"corrupted"}, 1, "checksum_mismatch: rank 1"},
		{"partial aggregate exits 1", []string{"missing-marker", "--no-strict"}, 1, "aggregate missing-marker is partial (1 failed check(s))"},
		{"mixed config", []string{"mixed-config"}, 1, "mixed_config_hash"},
		{"mixed config allowed", []string{"mixed-config", "--allow-mixed"}, 0, ""},
		{"unknown experiment", []string{"nope"}, 1, "not found"},
		{"bad id", []string{"../x"}, 2, "experiment id"},
		{"bad output", []string{"two-gpus", "-o", "csv"}, 2, "--output"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := execute(t, fixtures(t), tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.msg) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", code, stderr, tc.code, tc.msg)
			}
		})
	}
	// --no-strict wrote the partial aggregate; strict wrote nothing.
	repo := fixtures(t)
	execute(t, repo, "missing-marker", "--no-strict")
	if b, err := repo.LoadAggregated(context.Background(), "missing-marker"); err != nil || !bytes.Contains(b, []byte(`"partial": true`)) {
		t.Errorf("partial aggregate not written: %v", err)
	}
	execute(t, repo, "missing-rank")
	if _, err := repo.LoadAggregated(context.Background(), "missing-rank"); err == nil {
		t.Error("a strict failure wrote an aggregate")
	}
}
