package pluginscmd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/cli"
	"github.com/lemctl/lemctl/host/cli/pluginscmd"
	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/discovery"
)

var (
	badplugin string // host/discovery's test plugin (one binary, modes by name)
	binDir    string // scratch dir for built binaries
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pluginscmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	badplugin = filepath.Join(dir, "badplugin")
	if err := goBuild(".", badplugin, "github.com/lemctl/lemctl/host/discovery/internal/badplugin"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Discovery's Info cache must not leak between tests or into the user's cache.
	os.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	os.Unsetenv(discovery.PathEnv)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func goBuild(dir, out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg) // go test puts its own go first on PATH
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

func install(t *testing.T, dir, name string, mode os.FileMode) string {
	t.Helper()
	raw, err := os.ReadFile(badplugin)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, discovery.FilePrefix+name)
	if err := os.WriteFile(p, raw, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errw bytes.Buffer
	code = cli.Run(context.Background(), strings.NewReader(""), &out, &errw, args)
	return out.String(), errw.String(), code
}

func decodeList(t *testing.T, s string) pluginscmd.List {
	t.Helper()
	var l pluginscmd.List
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		t.Fatalf("list output is not JSON: %v\n%s", err, s)
	}
	return l
}

func byName(l pluginscmd.List) map[string]pluginscmd.Plugin {
	m := map[string]pluginscmd.Plugin{}
	for _, p := range l.Plugins {
		if _, ok := m[p.Name]; !ok {
			m[p.Name] = p
		}
	}
	return m
}

func TestList(t *testing.T) {
	dir := t.TempDir()
	install(t, dir, "good-a", 0o755)
	install(t, dir, "crash", 0o755)
	install(t, dir, "noexec", 0o644)

	out, errOut, code := run(t, "plugins", "list", "--plugin-dir", dir, "--output", "json")
	if code != cliutil.ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	l := decodeList(t, out)
	m := byName(l)
	if len(l.Plugins) != 3 {
		t.Fatalf("want 3 entries, got %+v", l.Plugins)
	}
	if g := m["good-a"]; !g.Available || !g.Selected || strings.Join(kinds(g), ",") != "energy" || g.Version != "1.0.0" ||
		len(g.SHA256) != 64 || g.Lock != "unlocked" || g.APIVersion != 1 || g.Source != "--plugin-dir" {
		t.Errorf("good-a: %+v", g)
	}
	for name, want := range map[string]string{"crash": "simulated crash at start", "noexec": "is not executable"} {
		p := m[name]
		if p.Available || !strings.Contains(p.Reason, want) || !strings.Contains(errOut, p.Path) {
			t.Errorf("%s: %+v; stderr must name %s", name, p, p.Path)
		}
	}
	if len(l.Searched) == 0 || l.Searched[0].Path != dir || l.Searched[0].Source != "--plugin-dir" {
		t.Errorf("searched: %+v", l.Searched)
	}

	table, _, code := run(t, "plugins", "list", "--plugin-dir", dir)
	if code != 0 {
		t.Fatalf("table exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "NAME") {
		t.Fatalf("table:\n%s", table)
	}
	for _, want := range []string{"good-a  energy  1.0.0    1    unlocked", "UNUSABLE: is not executable"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
}

func kinds(p pluginscmd.Plugin) []string {
	var s []string
	for _, k := range p.Kinds {
		s = append(s, string(k))
	}
	return s
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	install(t, dir, "good-a", 0o755)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad output", []string{"plugins", "list", "--plugin-dir", dir, "-o", "yaml"}, 2, `invalid argument "yaml" for "-o, --output" flag: valid values are table, json`},
		{"missing plugin dir", []string{"plugins", "list", "--plugin-dir", filepath.Join(dir, "nope")}, 2, "--plugin-dir " + filepath.Join(dir, "nope")},
		{"missing lock file", []string{"plugins", "list", "--plugin-dir", dir, "--lock", filepath.Join(dir, "x.lock")}, 2, "read lock file"},
		{"describe unknown", []string{"plugins", "describe", "nope", "--plugin-dir", dir}, 2, `plugin "nope" is not installed (installed: good-a; searched ` + dir},
		{"describe needs a name", []string{"plugins", "describe", "--plugin-dir", dir}, 2, "accepts 1 arg"},
		{"lock a missing dir", []string{"plugins", "lock", filepath.Join(dir, "nope")}, 2, "not a directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := run(t, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errOut, tc.code, tc.want)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	dir := t.TempDir()
	install(t, dir, "good-a", 0o755)
	install(t, dir, "crash", 0o755)

	out, errOut, code := run(t, "plugins", "describe", "good-a", "--plugin-dir", dir, "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var d pluginscmd.Description
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatal(err)
	}
	if d.Name != "good-a" || d.Description != "discovery test plugin" || d.Capabilities["mode"] != "good" || len(d.Config) != 3 {
		t.Fatalf("description: %+v", d)
	}
	want := []string{`interval duration "100ms" a duration such as "100ms"`, `level int 3 int in [1, 9]`, `flavour string "plain" one of ["plain","spicy"]`}
	for i, k := range d.Config {
		if got := fmt.Sprintf("%s %s %s %s", k.Key, k.Type, k.Default, k.Valid); got != want[i] {
			t.Errorf("config key %d: %q, want %q", i, got, want[i])
		}
		if k.Doc == "" {
			t.Errorf("config key %s has no doc", k.Key)
		}
	}
	table, _, _ := run(t, "plugins", "describe", "good-a", "--plugin-dir", dir)
	for _, w := range []string{"name:", "good-a", "configuration:", "level     int       3        int in [1, 9]", "mode = good"} {
		if !strings.Contains(table, w) {
			t.Errorf("describe table lacks %q:\n%s", w, table)
		}
	}
	// An unusable plugin is described with the reason, and the command fails.
	out, errOut, code = run(t, "plugins", "describe", "crash", "--plugin-dir", dir)
	if code != cliutil.ExitFailed || !strings.Contains(out, "UNUSABLE") || !strings.Contains(errOut, "simulated crash at start") {
		t.Errorf("describe crash: exit %d\n%s\n%s", code, out, errOut)
	}
}

func TestLockCommand(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "plugins")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	a := install(t, dir, "good-a", 0o755)
	install(t, dir, "good-b", 0o755)
	install(t, dir, "notes", 0o644)

	out, errOut, code := run(t, "plugins", "lock", "--plugin-dir", dir)
	if code != 0 {
		t.Fatalf("lock exit %d: %s", code, errOut)
	}
	lockPath := filepath.Join(root, "plugins.lock")
	if !strings.Contains(out, lockPath+"  2 plugin(s)") || !strings.Contains(errOut, "notes") {
		t.Fatalf("lock output:\n%s\nstderr:\n%s", out, errOut)
	}
	var lf discovery.LockFile
	raw, err := os.ReadFile(lockPath)
	if err != nil || json.Unmarshal(raw, &lf) != nil || len(lf.Plugins) != 2 || lf.Plugins[0].Path != "plugins/lem-plugin-good-a" {
		t.Fatalf("lock file: %v\n%s", err, raw)
	}

	out, _, _ = run(t, "plugins", "list", "--plugin-dir", dir, "-o", "json")
	if m := byName(decodeList(t, out)); m["good-a"].Lock != "locked" || m["good-a"].LockFile != lockPath {
		t.Fatalf("after lock: %+v", m["good-a"])
	}
	// A changed binary is refused; the other one still works.
	f, _ := os.OpenFile(a, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("changed")
	f.Close()
	out, _, code = run(t, "plugins", "list", "--plugin-dir", dir, "-o", "json")
	m := byName(decodeList(t, out))
	if code != 0 || m["good-a"].Available || m["good-a"].Lock != "mismatch" || !strings.Contains(m["good-a"].Reason, "differs from") || !m["good-b"].Available {
		t.Fatalf("after tampering: exit %d %+v %+v", code, m["good-a"], m["good-b"])
	}

	// --lock FILE writes one file; list --lock checks against it.
	other := filepath.Join(t.TempDir(), "pins.lock")
	if _, errOut, code := run(t, "plugins", "lock", "--lock", other, dir); code != 0 {
		t.Fatalf("lock --lock exit %d: %s", code, errOut)
	}
	out, _, _ = run(t, "plugins", "list", "--plugin-dir", dir, "--lock", other, "-o", "json")
	if m := byName(decodeList(t, out)); m["good-a"].Lock != "locked" || m["good-a"].LockFile != other {
		t.Fatalf("with --lock: %+v", m["good-a"])
	}

	// A world-writable directory is not locked.
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = run(t, "plugins", "lock", dir)
	if code != cliutil.ExitFailed || !strings.Contains(errOut, "chmod o-w "+dir) {
		t.Fatalf("lock world-writable: exit %d %s", code, errOut)
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		out, errOut, code := run(t, "completion", shell)
		if code != 0 || !strings.Contains(out, "lemctl") {
			t.Errorf("completion %s: exit %d %s", shell, code, errOut)
		}
	}
	dir := t.TempDir()
	install(t, dir, "good-a", 0o755)
	out, _, code := run(t, "__complete", "--plugin-dir", dir, "plugins", "describe", "")
	if code != 0 || !strings.Contains(out, "good-a\tenergy") {
		t.Errorf("completing describe: exit %d\n%s", code, out)
	}
}

// TestAcceptance runs the lemctl binary as docs/plugins.md's users do:
// `lemctl plugins list --plugin-dir bin/examples --output json` lists the four sdk examples with
// their kinds; without --plugin-dir it lists exactly bin/plugins/; a lem-plugin-* file in the
// working directory is never listed.
func TestAcceptance(t *testing.T) {
	bin := os.Getenv("LEM_BIN") // `make test` sets it to the built bin/
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "bin")
		if err := goBuild(".", filepath.Join(bin, "lemctl"), "github.com/lemctl/lemctl/cmd/lemctl"); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(bin, "plugins"), 0o755); err != nil {
			t.Fatal(err)
		}
		install(t, filepath.Join(bin, "plugins"), "good-bundled", 0o755)
		buildExamples(t, bin)
	}
	lemctl := filepath.Join(bin, "lemctl")
	wd := t.TempDir()
	install(t, wd, "good-cwd", 0o755)
	list := func(args ...string) pluginscmd.List {
		t.Helper()
		cmd := exec.Command(lemctl, append([]string{"plugins", "list", "--output", "json"}, args...)...)
		cmd.Dir = wd
		cmd.Env = append(os.Environ(), discovery.PathEnv+"=")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("lemctl %v: %v\n%s", args, err, stderr.String())
		}
		return decodeList(t, string(out))
	}

	t.Run("bin/plugins only", func(t *testing.T) {
		want := pluginFiles(t, filepath.Join(bin, "plugins"))
		var got []string
		for _, p := range list().Plugins {
			got = append(got, p.Path)
		}
		sort.Strings(got)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("listed:\n%s\nbin/plugins has:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
	t.Run("examples", func(t *testing.T) {
		ex := filepath.Join(bin, "examples")
		if _, err := os.Stat(filepath.Join(ex, "lem-plugin-example-meter")); err != nil {
			t.Skip("no example plugins built (sdk/examples not present)")
		}
		l := list("--plugin-dir", ex)
		m := map[string]string{}
		for _, p := range l.Plugins {
			if p.Source == string(discovery.SourceFlag) {
				if !p.Available {
					t.Errorf("%s unusable: %s", p.Path, p.Reason)
				}
				m[p.Name] = strings.Join(kinds(p), ",")
			}
		}
		want := map[string]string{"example-meter": "energy", "example-engine": "engine", "example-loader": "loader", "example-store": "repository"}
		for name, k := range want {
			if m[name] != k {
				t.Errorf("example %s: kinds %q, want %q (listed %v)", name, m[name], k, m)
			}
		}
	})
	t.Run("never the working directory", func(t *testing.T) {
		for _, p := range list().Plugins {
			if p.Name == "good-cwd" {
				t.Fatalf("a plugin of the working directory was listed: %+v", p)
			}
		}
	})
}

// buildExamples builds sdk/examples/<dir> into bin/examples/lem-plugin-example-<dir>, as
// `make examples` does, for the examples that exist.
func buildExamples(t *testing.T, bin string) {
	sdkDir, err := filepath.Abs(filepath.Join("..", "..", "..", "sdk"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range []string{"meter", "engine", "loader", "store"} {
		if _, err := os.Stat(filepath.Join(sdkDir, "examples", ex, "main.go")); err != nil {
			continue
		}
		if err := goBuild(sdkDir, filepath.Join(bin, "examples", "lem-plugin-example-"+ex), "./examples/"+ex); err != nil {
			t.Fatal(err)
		}
	}
}

func pluginFiles(t *testing.T, dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), discovery.FilePrefix) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out
}

func TestCheckUsage(t *testing.T) {
	dir := t.TempDir()
	noexec := install(t, dir, "good-noexec", 0o644)
	for _, args := range [][]string{
		{"plugins", "check"},
		{"plugins", "check", filepath.Join(dir, "lem-plugin-missing")},
		{"plugins", "check", noexec},
		{"plugins", "check", dir},
		{"plugins", "check", install(t, dir, "good-a", 0o755), "--config", "[1]"},
	} {
		out, errOut, code := run(t, args...)
		if code != cliutil.ExitUsage {
			t.Errorf("%v: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", args[2:], code, cliutil.ExitUsage, out, errOut)
		}
	}
	_, errOut, _ := run(t, "plugins", "check", noexec)
	if !strings.Contains(errOut, "not executable") {
		t.Errorf("a non-executable PATH must be named as such: %s", errOut)
	}
}

func TestCheckNamesTheFailedRule(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, rule string }{
		{"crash", "handshake"}, // exits before the handshake line
		{"infoapi", "info"},    // claims API version 7 only
	} {
		out, errOut, code := run(t, "plugins", "check", install(t, dir, tc.name, 0o755))
		if code != cliutil.ExitFailed {
			t.Errorf("%s: exit %d, want %d\n%s\n%s", tc.name, code, cliutil.ExitFailed, out, errOut)
		}
		if !strings.Contains(out, "FAIL  "+tc.rule+"\n") || !strings.Contains(errOut, tc.rule) {
			t.Errorf("%s: the failed rule %q is not named:\nstdout:\n%s\nstderr:\n%s", tc.name, tc.rule, out, errOut)
		}
	}
}
