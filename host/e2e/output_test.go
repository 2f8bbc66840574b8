package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var snakeKey = regexp.MustCompile(`^[a-z0-9_]+$`)

// dataMaps are keys whose object values are data keyed by names the user or a plugin chose
// (config keys, environment facts, model metadata), not fields of lemctl's JSON.
var dataMaps = map[string]bool{"config": true, "sources": true, "facts": true, "metadata": true, "capabilities": true, "runtime_versions": true}

// checkSnakeKeys fails unless data is JSON whose every object key is snake_case.
func checkSnakeKeys(t *testing.T, what string, data []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Errorf("%s: not JSON: %v\n%s", what, err, data)
		return
	}
	var bad []string
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if !snakeKey.MatchString(k) {
					bad = append(bad, path+"."+k)
				}
				if !dataMaps[k] {
					walk(path+"."+k, e)
				}
			}
		case []any:
			for _, e := range x {
				walk(path+"[]", e)
			}
		}
	}
	walk("", v)
	if len(bad) > 0 {
		t.Errorf("%s: keys not snake_case: %v", what, bad)
	}
}

// TestOutputConvention: every command that prints data takes -o/--output table|json (export:
// csv|json|table, with --format kept), prints JSON with snake_case keys only, refuses another
// value as a usage error naming the flag and the valid values; results list shows model,
// energy, J/token, valid and partial, and refuses a results directory that does not exist.
func TestOutputConvention(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "experiment.toml")
	meter := "\n[energy]\nmeters = [\"example-meter\"]\n\n[energy.example-meter]\ndomains = [\"pkg:package:node\"]\npower_w = 50.0\n"
	if err := os.WriteFile(cfg, []byte(experiment("output", 1, meter)), 0o644); err != nil {
		t.Fatal(err)
	}
	res := filepath.Join(dir, "results")
	cmd := func(args ...string) *run {
		t.Helper()
		// The global flags go before a "--", after which `measure` takes its command.
		flags := []string{"--plugin-dir", pluginDir, "--results-dir", res}
		if i := slices.Index(args, "--"); i >= 0 {
			args = slices.Concat(args[:i], flags, args[i:])
		} else {
			args = append(args, flags...)
		}
		r := lemctl(t, nil, args...)
		r.wait(t, 3*time.Minute)
		return r
	}
	jsonOK := func(what string, r *run) {
		t.Helper()
		if r.code != 0 {
			t.Errorf("%s: exit %d\n%s", what, r.code, r.stderr.String())
			return
		}
		checkSnakeKeys(t, what, r.stdout.Bytes())
	}

	r := cmd("run", cfg, "--progress", "quiet", "-o", "json")
	jsonOK("run -o json", r)
	var agg struct {
		ExperimentID string `json:"experiment_id"`
		Kind         string `json:"kind"`
	}
	if err := json.Unmarshal(r.stdout.Bytes(), &agg); err != nil || agg.Kind != "aggregated" {
		t.Fatalf("run -o json printed no aggregate (%v):\n%s", err, r.stdout.String())
	}
	exp := agg.ExperimentID

	r = cmd("results", "list", "-o", "json")
	jsonOK("results list -o json", r)
	var list []map[string]any
	if err := json.Unmarshal(r.stdout.Bytes(), &list); err != nil || len(list) != 1 {
		t.Fatalf("results list -o json: %v\n%s", err, r.stdout.String())
	}
	e := list[0]
	if e["state"] != "completed" || e["model"] != "example:tiny" || e["valid"] == nil || e["partial"] != false || e["total_j"] == nil || e["j_per_output_token"] == nil {
		t.Errorf("results list entry %v: want model, total_j, j_per_output_token, valid and partial from the aggregate", e)
	}
	r = cmd("results", "list")
	head := strings.Fields(strings.SplitN(r.stdout.String(), "\n", 2)[0])
	if r.code != 0 || len(head) < 7 || strings.Join(head[:7], " ") != "EXPERIMENT STATE MODEL ENERGY J/TOKEN VALID PARTIAL" ||
		!strings.Contains(r.stdout.String(), "example:tiny") || !strings.Contains(r.stdout.String(), "completed") {
		t.Errorf("results list table (exit %d):\n%s", r.code, r.stdout.String())
	}

	jsonOK("results show -o json", cmd("results", "show", exp, "-o", "json"))
	jsonOK("results show --raw -o json", cmd("results", "show", exp, "--raw", "-o", "json"))
	jsonOK("results export -o json", cmd("results", "export", exp, "-o", "json"))
	jsonOK("results export --format json", cmd("results", "export", exp, "--format", "json"))
	if r := cmd("results", "export", exp, "-o", "table"); r.code != 0 || !strings.HasPrefix(r.stdout.String(), "scope ") {
		t.Errorf("results export -o table (exit %d):\n%s", r.code, r.stdout.String())
	}
	if r := cmd("results", "export", exp); r.code != 0 || !strings.HasPrefix(r.stdout.String(), "scope,experiment_id,") {
		t.Errorf("results export (csv by default) (exit %d):\n%s", r.code, r.stdout.String())
	}
	jsonOK("aggregate -o json", cmd("aggregate", exp, "--force", "-o", "json"))
	jsonOK("config validate -o json", cmd("config", "validate", cfg, "-o", "json"))
	jsonOK("config show -o json", cmd("config", "show", cfg, "-o", "json"))
	jsonOK("datasets -o json", cmd("datasets", "-o", "json"))
	jsonOK("datasets builtin -o json", cmd("datasets", "builtin", "-o", "json"))
	jsonOK("plugins list -o json", cmd("plugins", "list", "-o", "json"))
	jsonOK("plugins describe -o json", cmd("plugins", "describe", "example-meter", "-o", "json"))
	jsonOK("generate -o json", cmd("generate", "--plugin", "example-loader", "--engine-plugin", "example-engine", "-m", "example:tiny", "-o", "json"))
	jsonOK("measure -o json", cmd("measure", "--meter", "example-meter", "-o", "json", "--", "true"))
	r = cmd("measure", "--meter", "example-meter", "-o", "json", "--", "true")
	var rep struct {
		Domains []map[string]any `json:"domains"`
	}
	if err := json.Unmarshal(r.stdout.Bytes(), &rep); err != nil || len(rep.Domains) == 0 {
		t.Fatalf("measure -o json: %v\n%s", err, r.stdout.String())
	}
	if _, ok := rep.Domains[0]["total_j"]; !ok {
		t.Errorf("measure's domain has no total_j (the key results use): %v", rep.Domains[0])
	}

	r = cmd("run", cfg, "--progress", "quiet", "--no-aggregate", "-o", "json")
	jsonOK("run --no-aggregate -o json", r)
	var noagg map[string]any
	if err := json.Unmarshal(r.stdout.Bytes(), &noagg); err != nil || noagg["aggregated"] != false || noagg["experiment_id"] == "" || noagg["results_dir"] != res {
		t.Errorf("run --no-aggregate -o json: %v\n%s", err, r.stdout.String())
	}

	// config validate -o json of an invalid file: exit 2, the problem with its key.
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte(experiment("bad", 1, "\n[workload.nope]\nx = 1\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	r = cmd("config", "validate", bad, "-o", "json")
	var verdicts []struct {
		Valid  bool `json:"valid"`
		Errors []struct {
			Key string `json:"key"`
		} `json:"errors"`
	}
	if r.code != 2 || json.Unmarshal(r.stdout.Bytes(), &verdicts) != nil || len(verdicts) != 1 || verdicts[0].Valid || len(verdicts[0].Errors) == 0 {
		t.Errorf("config validate -o json of a bad file: exit %d\n%s", r.code, r.stdout.String())
	}

	for _, args := range [][]string{
		{"run", cfg, "-o", "xml"},
		{"results", "list", "-o", "xml"},
		{"config", "validate", cfg, "--output", "yaml"},
		{"results", "export", exp, "--format", "jsonl"},
	} {
		r := cmd(args...)
		msg := r.stderr.String()
		if r.code != 2 || !strings.Contains(msg, "--output") && !strings.Contains(msg, "--format") || !strings.Contains(msg, "valid values are") {
			t.Errorf("lemctl %v: exit %d, want 2 naming the flag and its valid values\n%s", args, r.code, msg)
		}
	}

	missing := filepath.Join(dir, "no-such-results")
	r = lemctl(t, nil, "results", "list", "--plugin-dir", pluginDir, "--results-dir", missing)
	if code := r.wait(t, time.Minute); code != 2 || !strings.Contains(r.stderr.String(), missing) || r.stdout.Len() != 0 {
		t.Errorf("results list of a missing directory: exit %d, want 2 naming %s\nstdout:\n%s\nstderr:\n%s", code, missing, r.stdout.String(), r.stderr.String())
	}

	r = cmd("run", "--help")
	var line string
	for _, l := range strings.Split(r.stdout.String(), "\n") {
		if strings.Contains(l, "--no-aggregate") {
			line = l
		}
	}
	if f := strings.Fields(line); len(f) < 2 || f[0] != "--no-aggregate" || f[1] != "leave" {
		t.Errorf("run --help renders --no-aggregate as taking a value: %q", line)
	}
}
