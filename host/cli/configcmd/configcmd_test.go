package configcmd_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/examples"
	"github.com/lemctl/lemctl/host/cli/configcmd"
	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/config"
	"github.com/lemctl/lemctl/host/config/configtest"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// execute runs `lemctl config ARGS…` without a plugin configurer (plugin tables unchecked).
func execute(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return executeWith(t, nil, args...)
}

// executor returns execute with the standard plugins' configurer in the Factory.
func executor() func(t *testing.T, args ...string) (stdout, stderr string, code int) {
	return func(t *testing.T, args ...string) (string, string, int) {
		t.Helper()
		return executeWith(t, func(context.Context) (config.PluginConfigurer, func(), error) {
			return configtest.Standard(), func() {}, nil
		}, args...)
	}
}

func executeWith(t *testing.T, configurer func(context.Context) (config.PluginConfigurer, func(), error), args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	f := &cliutil.Factory{In: strings.NewReader(""), Out: &out, Err: &errb, Configurer: configurer}
	cmd := configcmd.NewCommand(f)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errb.String(), cliutil.CodeOf(err)
}

// Every bad config of host/config's corpus makes `config validate` exit 2, with its first
// expected message on stderr and nothing on stdout.
func TestValidateBadCorpus(t *testing.T) {
	execute := executor()
	t.Chdir("../../config") // dataset paths in the corpus are relative to the current directory
	files, _ := filepath.Glob("testdata/bad/*.toml")
	if len(files) < 30 {
		t.Fatalf("%d bad configs", len(files))
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			args := []string{"validate", file}
			data, _ := os.ReadFile(file)
			sc := bufio.NewScanner(bytes.NewReader(data))
			for sc.Scan() && strings.HasPrefix(sc.Text(), "#! ") {
				k, v, _ := strings.Cut(strings.TrimPrefix(sc.Text(), "#! "), ": ")
				args = append(args, map[string]string{"set": "--set", "d": "-d", "n": "-n"}[k], v)
			}
			want, _ := os.ReadFile(strings.TrimSuffix(file, ".toml") + ".want")
			first := strings.SplitN(strings.TrimSpace(string(want)), "\n", 2)[0]
			if line, msg, ok := strings.Cut(first, ": "); ok && line != "" && line[0] >= '0' && line[0] <= '9' {
				if line == "0" {
					first = file + ": " + msg
				} else {
					first = file + ":" + line + ": " + msg
				}
			}
			stdout, stderr, code := execute(t, args...)
			if code != cliutil.ExitUsage {
				t.Errorf("exit %d, want 2; stderr:\n%s", code, stderr)
			}
			if !strings.Contains(stderr, first) {
				t.Errorf("stderr lacks %q:\n%s", first, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout not empty: %q", stdout)
			}
		})
	}
}

func TestValidateExamples(t *testing.T) {
	execute := executor()
	files, _ := filepath.Glob("../../../examples/*.toml")
	stdout, stderr, code := execute(t, append([]string{"validate"}, files...)...)
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if got := strings.Count(stdout, ": valid (config_hash "); got != len(files) {
		t.Errorf("stdout:\n%s", stdout)
	}
}

func TestValidateMixed(t *testing.T) {
	execute := executor()
	stdout, stderr, code := execute(t, "validate", "../../../examples/quickstart.toml", "../../config/testdata/bad/two-errors.toml", "no-such.toml")
	if code != cliutil.ExitUsage {
		t.Errorf("exit %d", code)
	}
	for _, want := range []string{"two-errors.toml:5: workload.batch_size", "two-errors.toml:6: workload.max_new_tokns", "no-such.toml: cannot read config: no such file"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if !strings.Contains(stdout, "quickstart.toml: valid") {
		t.Errorf("stdout: %q", stdout)
	}
}

func TestWithoutConfigurerWarns(t *testing.T) {
	_, stderr, code := execute(t, "validate", "../../../examples/gpu.toml")
	if code != 0 || !strings.Contains(stderr, "plugin tables") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n%s", path, got)
	}
}

func TestShowGolden(t *testing.T) {
	execute := executor()
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"show-quickstart.toml", []string{"show"}},
		{"show-quickstart-overrides.toml", []string{"show", "-n", "16", "-d", "synthetic:32", "--set", "workload.batch_size=4", "--set", `launch.devices=["GPU-0000"]`}},
		{"show-gpu.json", []string{"show", "../../../examples/gpu.toml", "--output", "json"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			stdout, stderr, code := execute(t, tc.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			golden(t, tc.golden, stdout)
		})
	}
}

// The hash `config show` prints is config.Hash of the same config (what a run records), and
// the TOML it prints loads back to that hash.
func TestShowHashIsTheRunHash(t *testing.T) {
	execute := executor()
	stdout, _, code := execute(t, "show", "--set", "workload.repeats=2", "-o", "json")
	if code != 0 {
		t.Fatal(code)
	}
	var shown configcmd.ShowJSON
	if err := json.Unmarshal([]byte(stdout), &shown); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(context.Background(), examples.QuickstartName, examples.Quickstart, config.Options{Overrides: config.Overrides{Set: []string{"workload.repeats=2"}}})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := config.Hash(cfg)
	if shown.ConfigHash != want || shown.Sources["workload.repeats"] != "flag --set" {
		t.Errorf("shown %s %v, want %s", shown.ConfigHash, shown.Sources, want)
	}
	tomlOut, _, _ := execute(t, "show", "--set", "workload.repeats=2")
	back, err := config.Load(context.Background(), "shown.toml", []byte(tomlOut), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := config.Hash(back); h != want {
		t.Errorf("shown TOML hashes to %s, want %s", h, want)
	}
}

func TestShowUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"show", "-o", "yaml"},
		{"show", "../../config/testdata/bad/two-errors.toml"},
		{"show", "--set", "nonsense"},
	} {
		if _, _, code := execute(t, args...); code != cliutil.ExitUsage {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
