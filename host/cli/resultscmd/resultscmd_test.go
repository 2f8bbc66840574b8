package resultscmd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lemctl/lemctl/host/aggregate"
	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/results/resultstest"
	"github.com/lemctl/lemctl/sdk"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// The fixture results tree is host/aggregate's (generated there from known scenarios).
const fixtureTree = "../../aggregate/testdata/results"

func repoWithAggregates(t *testing.T, exps ...string) *resultstest.Memory {
	t.Helper()
	repo, err := resultstest.LoadTree(fixtureTree)
	if err != nil {
		t.Fatal(err)
	}
	repo.Now = func() time.Time { return time.Unix(1_796_000_200, 0) }
	for _, exp := range exps {
		_, err := aggregate.Run(context.Background(), repo, exp, aggregate.Options{NoStrict: true,
			LemctlVersion: "test", LemctlCommit: "test", Now: func() time.Time { return time.Unix(1_796_000_300, 0) }})
		if err != nil {
			t.Fatal(err)
		}
	}
	return repo
}

// factory is a Factory whose repository is repo, writing to out and errb.
func factory(repo sdk.Repository, out, errb *bytes.Buffer) *cliutil.Factory {
	return &cliutil.Factory{Out: out, Err: errb, ResultsDir: "results",
		Repository: func(context.Context) (sdk.Repository, error) { return repo, nil }}
}

// execute runs `lemctl results ARGS…` against repo and returns stdout, stderr and the exit code.
func execute(t *testing.T, repo sdk.Repository, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := NewCommand(factory(repo, &out, &errb))
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

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestShowTable(t *testing.T) {
	repo := repoWithAggregates(t, "shared-package", "two-gpus", "missing-marker")
	tests := []struct {
		name string
		args []string
	}{
		{"show-shared-package", []string{"show", "shared-package"}},
		{"show-two-gpus", []string{"show", "two-gpus"}},
		{"show-partial", []string{"show", "missing-marker"}},
		{"show-raw-two-gpus", []string{"show", "--raw", "two-gpus"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, code := execute(t, repo, tc.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			golden(t, tc.name, out)
		})
	}
}

func TestShowJSON(t *testing.T) {
	repo := repoWithAggregates(t, "two-gpus")
	out, stderr, code := execute(t, repo, "show", "two-gpus", "--output", "json")
	stored, _ := repo.LoadAggregated(context.Background(), "two-gpus")
	if code != 0 || out != string(stored) {
		t.Fatalf("exit %d (%s); show --output json must print the stored aggregate as is", code, stderr)
	}
	out, stderr, code = execute(t, repo, "show", "--raw", "-o", "json", "two-gpus")
	var raws []results.Raw
	if code != 0 || json.Unmarshal([]byte(out), &raws) != nil || len(raws) != 2 || raws[1].Rank != 1 {
		t.Fatalf("show --raw -o json: exit %d (%s): %.200s", code, stderr, out)
	}
}

func TestErrors(t *testing.T) {
	repo := repoWithAggregates(t)
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no aggregate yet", []string{"show", "two-gpus"}, 1, "run `lemctl aggregate two-gpus`"},
		{"unknown experiment", []string{"show", "--raw", "nope"}, 1, "not found"},
		{"bad output", []string{"show", "two-gpus", "-o", "yaml"}, 2, `invalid argument "yaml" for "-o, --output" flag: valid values are table, json`},
		{"bad id", []string{"show", "../x"}, 2, "experiment id"},
		{"bad format", []string{"export", "two-gpus", "--format", "xml"}, 2, `invalid argument "xml" for "--format" flag: valid values are csv, json, table`},
		{"export without aggregate", []string{"export", "two-gpus"}, 1, "has no aggregate"},
		{"list bad output", []string{"list", "-o", "toml"}, 2, "--output"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := execute(t, repo, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.msg) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", code, stderr, tc.code, tc.msg)
			}
		})
	}
}

// The run functions take their options without cobra: show and list on a memory repository.
func TestRunFunctionsWithoutCobra(t *testing.T) {
	repo := repoWithAggregates(t, "two-gpus")
	var out, errb bytes.Buffer
	f := factory(repo, &out, &errb)
	if err := showRun(context.Background(), &ShowOptions{F: f, Exp: "two-gpus", Output: "json"}); err != nil {
		t.Fatal(err)
	}
	stored, _ := repo.LoadAggregated(context.Background(), "two-gpus")
	if out.String() != string(stored) {
		t.Fatalf("showRun -o json printed %.200q, want the stored aggregate", out.String())
	}
	out.Reset()
	if err := listRun(context.Background(), &ListOptions{F: f, Output: "table"}); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 9 || !strings.HasPrefix(lines[0], "EXPERIMENT") {
		t.Fatalf("listRun table: %d lines:\n%s", len(lines), out.String())
	}
	err := showRun(context.Background(), &ShowOptions{F: f, Exp: "nope"})
	if cliutil.CodeOf(err) != cliutil.ExitFailed || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("showRun of a missing experiment: exit %d, %v", cliutil.CodeOf(err), err)
	}
}

// A repository the Factory cannot open fails the command with the Factory's error and code.
func TestRepositoryErrorFromTheFactory(t *testing.T) {
	var out, errb bytes.Buffer
	f := &cliutil.Factory{Out: &out, Err: &errb, ResultsDir: "nowhere",
		Repository: func(context.Context) (sdk.Repository, error) {
			return nil, cliutil.Usagef("--results-dir nowhere: no such directory")
		}}
	err := listRun(context.Background(), &ListOptions{F: f})
	if cliutil.CodeOf(err) != cliutil.ExitUsage || !strings.Contains(err.Error(), "--results-dir nowhere") || out.Len() != 0 {
		t.Fatalf("exit %d, %v, stdout %q", cliutil.CodeOf(err), err, out.String())
	}
}

// A bad -o is refused while the flags are parsed: exit 2 naming the flag, and run never starts.
func TestBadOutputNeverRuns(t *testing.T) {
	ran := false
	cmd := NewCmdList(&cliutil.Factory{}, func(*ListOptions) error { ran = true; return nil })
	cmd.SetArgs([]string{"-o", "yaml"})
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	err := cmd.Execute()
	if ran || cliutil.CodeOf(err) != cliutil.ExitUsage || !strings.Contains(err.Error(), "--output") || !strings.Contains(err.Error(), "table, json") {
		t.Fatalf("ran %v, exit %d, %v", ran, cliutil.CodeOf(err), err)
	}
	var got *ExportOptions
	cmd = NewCmdExport(&cliutil.Factory{}, func(o *ExportOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"exp-1", "--format", "table"})
	if err := cmd.Execute(); err != nil || got == nil || got.Exp != "exp-1" || got.Format != FormatTable {
		t.Fatalf("export exp-1 --format table: %v, %+v", err, got)
	}
}

func TestList(t *testing.T) {
	repo := repoWithAggregates(t, "two-gpus")
	out, stderr, code := execute(t, repo, "list")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	golden(t, "list", out)
	out, _, _ = execute(t, repo, "list", "-o", "json")
	var got []struct {
		ID             string `json:"id"`
		RawRanks       []int  `json:"raw_ranks"`
		CompletedRanks []int  `json:"completed_ranks"`
		Aggregated     bool   `json:"aggregated"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 8 {
		t.Fatalf("list -o json = %s (%v)", out, err)
	}
	// The figures come from the aggregate: two-gpus has one; the others have nulls.
	var figs []ListEntry
	if err := json.Unmarshal([]byte(out), &figs); err != nil {
		t.Fatal(err)
	}
	for _, e := range figs {
		switch {
		case e.ID == "two-gpus":
			if e.Model != "synthetic:tiny" || e.TotalJ == nil || *e.TotalJ != 6000 || e.JPerOutputToken == nil || *e.JPerOutputToken != 93.75 ||
				e.Valid == nil || !*e.Valid || e.Partial == nil || *e.Partial {
				t.Errorf("two-gpus list entry %+v: want synthetic:tiny, 6000 J, 93.75 J/token, valid, not partial", e)
			}
		case e.Model != "" || e.TotalJ != nil || e.Valid != nil || e.Partial != nil:
			t.Errorf("%s has no aggregate but lists figures: %+v", e.ID, e)
		}
	}
	for _, e := range got {
		if e.ID == "missing-marker" && (len(e.RawRanks) != 2 || len(e.CompletedRanks) != 1 || e.Aggregated) {
			t.Errorf("missing-marker = %+v", e)
		}
		if e.ID == "two-gpus" && !e.Aggregated {
			t.Errorf("two-gpus = %+v", e)
		}
	}
	out, _, code = execute(t, resultstest.NewMemory(), "list")
	if code != 0 || out != "no experiments in results\n" {
		t.Errorf("empty list = %q", out)
	}
}

func TestExport(t *testing.T) {
	repo := repoWithAggregates(t, "shared-package", "missing-rank")
	out, stderr, code := execute(t, repo, "export", "shared-package", "--format", "csv")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	golden(t, "export-shared-package.csv", out)
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(rows) != 4 || len(rows[0]) != len(CSVHeader) {
		t.Fatalf("csv: %d rows, %v", len(rows), err)
	}
	col := func(name string) int {
		for i, h := range CSVHeader {
			if h == name {
				return i
			}
		}
		t.Fatalf("no column %s", name)
		return -1
	}
	if rows[1][col("scope")] != "aggregate" || rows[1][col("output_tokens")] != "128" || rows[2][col("rank")] != "0" {
		t.Errorf("rows = %q", rows[:3])
	}
	// A figure that was not measured is an empty cell, never 0: the workers' static energy.
	if got := rows[2][col("energy_static_j")]; got != "" {
		t.Errorf("rank 0 energy_static_j = %q, want empty (the worker did not report it)", got)
	}
	out, _, code = execute(t, repo, "export", "shared-package", "--format", "json")
	stored, _ := repo.LoadAggregated(context.Background(), "shared-package")
	if code != 0 || out != string(stored) {
		t.Errorf("export --format json must print the stored aggregate")
	}
}

// Nothing measured: the table says so, shows each domain's reason, and prints "—" for the
// figures that do not exist (never 0).
func TestShowUnmeasured(t *testing.T) {
	w := resultstest.Worker{Exp: "dark", WorldSize: 1, Host: results.Host{Hostname: "h", BootID: "b"},
		Device: results.Device{Kind: "cpu", Index: -1, Slot: "cpu:0"}, StartMonoNS: 1e9, EndMonoNS: 11e9, WallOffsetNS: 1_796_000_000e9,
		RequestsPerRepeat: 1, InputTokens: 3, OutputTokens: 1, TTFTNS: 5e6,
		Domains: []resultstest.DomainSpec{
			{ID: "intel-rapl:0", Kind: "package", Scope: "socket", Unavailable: "permission denied: energy_uj is root-only (CVE-2020-8694)"},
			{ID: "GPU-none", Kind: "gpu", Scope: "device", Unavailable: "NVML library not found"},
		}}
	repo := resultstest.NewMemory()
	ctx := context.Background()
	data := w.Bytes()
	repo.SaveRaw(ctx, "dark", 0, data)
	st, _ := repo.ListRaw(ctx, "dark")
	if _, err := repo.MarkComplete(ctx, "dark", 0, st[0].SHA256); err != nil {
		t.Fatal(err)
	}
	if _, err := aggregate.Run(ctx, repo, "dark", aggregate.Options{Now: func() time.Time { return time.Unix(0, 0) }}); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := execute(t, repo, "show", "dark")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	golden(t, "show-unmeasured", out)
	out, _, _ = execute(t, repo, "show", "--raw", "dark")
	if !strings.Contains(out, "unavailable: NVML library not found") {
		t.Errorf("show --raw lacks the reason:\n%s", out)
	}
}

// Every finding is printed — the workers' findings, the health of each domain, the aggregation's
// own and free-text warnings — with severity, code, domain, rank, message and advice, errors
// first; a domain health error makes the verdict INVALID in the aggregate and in each raw result.
func TestShowFindings(t *testing.T) {
	host := results.Host{Hostname: "h", BootID: "b"}
	base := resultstest.Worker{Exp: "health", WorldSize: 2, Host: host, StartMonoNS: 1e9, EndMonoNS: 21e9, WallOffsetNS: 1_796_000_000e9,
		RequestsPerRepeat: 2, InputTokens: 3, OutputTokens: 4, TTFTNS: 5e6, ITLNS: 1e6}
	w0, w1 := base, base
	w0.Device = results.Device{Kind: "cuda", Index: 0, UUID: "GPU-a", Slot: "cuda:0"}
	w1.Rank, w1.Device = 1, results.Device{Kind: "cuda", Index: 1, UUID: "GPU-b", Slot: "cuda:1"}
	w0.Domains = []resultstest.DomainSpec{{ID: "GPU-a", Kind: "gpu", Scope: "device", PowerW: 100,
		Health: []results.Finding{{Code: "throttled", Severity: "warning", Message: "clocks throttled for 3.2 s (thermal)"}}}}
	w1.Domains = []resultstest.DomainSpec{{ID: "GPU-b", Kind: "gpu", Scope: "device", PowerW: 100,
		Health: []results.Finding{{Code: "counter_reset", Severity: "error", Message: "the energy counter went backwards at 4.1 s",
			Advice: "the driver reloaded: rerun"}}}}
	w1.Findings = []results.Finding{{Code: "window_too_short", Severity: "warning", Message: "the measured window lasted 2 s"}}
	r1 := w1.Raw()
	r1.Warnings = []results.Warning{{Message: "warmup: latency CV did not fall below 0.05 within 20 batches", Rank: results.IntPtr(1)}}
	b1, err := results.Encode(r1)
	if err != nil {
		t.Fatal(err)
	}
	repo := resultstest.NewMemory()
	ctx := context.Background()
	for rank, data := range map[int][]byte{0: w0.Bytes(), 1: b1} {
		repo.SaveRaw(ctx, "health", rank, data)
		if _, err := repo.MarkComplete(ctx, "health", rank, shaOf(data)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := aggregate.Run(ctx, repo, "health", aggregate.Options{Now: func() time.Time { return time.Unix(0, 0) }}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"show", "health"}, {"show", "--raw", "health"}} {
		out, stderr, code := execute(t, repo, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		if !strings.Contains(out, "INVALID (1 error(s)") {
			t.Errorf("%v: the verdict must be INVALID with its error counted:\n%s", args, out)
		}
		want := []string{ // in this order: errors first
			"error     counter_reset     GPU-b   1     the energy counter went backwards at 4.1 s",
			"→ the driver reloaded: rerun",
			"warning   window_too_short  —       1     the measured window lasted 2 s",
			"warning   throttled         GPU-a   0     clocks throttled for 3.2 s (thermal)",
			"warning   —                 —       1     warmup: latency CV did not fall below 0.05 within 20 batches",
		}
		if args[1] == "--raw" { // each raw result lists its own, rank 0's first
			want = []string{
				"warning   throttled  GPU-a   0     clocks throttled for 3.2 s (thermal)",
				"error     counter_reset     GPU-b   1     the energy counter went backwards at 4.1 s",
				"→ the driver reloaded: rerun",
				"warning   window_too_short  —       1     the measured window lasted 2 s",
				"warning   —                 —       1     warmup: latency CV did not fall below 0.05 within 20 batches",
			}
		}
		at := 0
		for _, line := range want {
			i := strings.Index(out[at:], line)
			if i < 0 {
				t.Errorf("%v: missing (or out of order) %q in:\n%s", args, line, out)
				break
			}
			at += i + len(line)
		}
	}
}

func shaOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
