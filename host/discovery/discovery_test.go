package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lemctl/lemctl/host/config"
	"github.com/lemctl/lemctl/sdk"
)

func TestPrecedence(t *testing.T) {
	t.Parallel()
	flagDir := mkdir(t, "flag")
	envLow := mkdir(t, "env-low")
	envHigh := mkdir(t, "env-high")
	exeBin := mkdir(t, "bin")
	exeDir := filepath.Join(exeBin, "plugins")
	if err := os.Mkdir(exeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	spec := map[string]specEntry{}
	put := func(dir, name, version string) string {
		p := install(t, dir, name)
		spec[p] = specEntry{Version: version}
		return p
	}
	// "dup": highest version wins among $LEM_PLUGIN_PATH and <dir of lemctl>/plugins.
	put(envLow, "good-dup", "1.2.0")
	dupHigh := put(exeDir, "good-dup", "1.10.0")
	put(envHigh, "good-dup", "1.9.9")
	// "flag": the --plugin-dir copy wins although its version is the lowest.
	flagWin := put(flagDir, "good-flag", "0.1.0")
	put(envHigh, "good-flag", "9.0.0")
	// "tie": equal versions, the first found wins.
	tieFirst := put(envLow, "good-tie", "2.0.0")
	put(envHigh, "good-tie", "2.0.0")
	// A broken copy in --plugin-dir never hides a working one elsewhere.
	spec[install(t, flagDir, "good-broken")] = specEntry{Mode: "crash"}
	brokenOK := put(envHigh, "good-broken", "1.0.0")

	var logs syncBuffer
	cat := discover(t, Options{
		Dirs:       []string{flagDir},
		PluginPath: envLow + ":" + envHigh,
		Executable: filepath.Join(exeBin, "lemctl"),
		Env:        []string{specEnv(t, spec)},
		Logger:     testLogger(&logs),
	})
	tests := []struct {
		name, path string
		source     Source
		shadows    int
	}{
		{"good-dup", dupHigh, SourceExe, 2},
		{"good-flag", flagWin, SourceFlag, 1},
		{"good-tie", tieFirst, SourceEnv, 1},
		{"good-broken", brokenOK, SourceEnv, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantSelected(t, cat, tc.name, tc.path)
			p, _ := cat.Find(tc.name)
			if p.Source != tc.source {
				t.Errorf("source %q, want %q", p.Source, tc.source)
			}
			shadowed := 0
			for _, c := range cat.Candidates {
				if c.Name == tc.name && c.Available && !c.Selected {
					shadowed++
					if !strings.Contains(c.Reason, "shadowed by "+tc.path) {
						t.Errorf("shadowed %s: reason %q", c.Path, c.Reason)
					}
					warn := "it shadows " + c.Path
					if !strings.Contains(logs.String(), warn) {
						t.Errorf("no warning %q in logs:\n%s", warn, logs.String())
					}
				}
			}
			if shadowed != tc.shadows {
				t.Errorf("%d shadowed, want %d", shadowed, tc.shadows)
			}
		})
	}
	if got := len(cat.Plugins()); got != 4 {
		t.Errorf("%d plugins selected, want 4", got)
	}
}

func TestSearchDirs(t *testing.T) {
	abs := mkdir(t, "abs")
	flag := mkdir(t, "flag")
	tests := []struct {
		name    string
		opts    Options
		want    []string
		wantErr string
	}{
		{
			name: "order and sources",
			opts: Options{Dirs: []string{flag}, PluginPath: abs, Executable: "/opt/lem/bin/lemctl"},
			want: []string{flag + " (--plugin-dir)", abs + " ($LEM_PLUGIN_PATH)", "/opt/lem/bin/plugins (<dir of lemctl>/plugins)"},
		},
		{
			name: "empty and relative entries never mean the working directory",
			opts: Options{PluginPath: ":.:plugins::" + abs + ":"},
			want: []string{abs + " ($LEM_PLUGIN_PATH)"},
		},
		{
			name: "duplicates searched once, first source kept",
			opts: Options{Dirs: []string{abs}, PluginPath: abs + ":" + abs + "/"},
			want: []string{abs + " (--plugin-dir)"},
		},
		{
			name: "no executable, no exe dir",
			opts: Options{},
			want: nil,
		},
		{
			name:    "missing --plugin-dir is an error",
			opts:    Options{Dirs: []string{filepath.Join(abs, "missing")}},
			wantErr: "--plugin-dir " + filepath.Join(abs, "missing"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dirs, err := SearchDirs(tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range dirs {
				got = append(got, d.Path+" ("+string(d.Source)+")")
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("dirs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestNeverTheWorkingDirectory: a plugin in the working directory is not found through an empty
// or relative $LEM_PLUGIN_PATH entry, nor by default.
func TestNeverTheWorkingDirectory(t *testing.T) {
	wd := mkdir(t, "wd")
	install(t, wd, "good-cwd")
	t.Chdir(wd)
	cat := discover(t, Options{PluginPath: ":.:./", Executable: filepath.Join(t.TempDir(), "lemctl")})
	if len(cat.Candidates) != 0 {
		t.Fatalf("found %d candidates, want none (first %s)", len(cat.Candidates), cat.Candidates[0].Path)
	}
	// An explicit --plugin-dir . is the user's choice, and resolved to an absolute path.
	cat = discover(t, Options{Dirs: []string{"."}})
	wantSelected(t, cat, "good-cwd", filepath.Join(wd, FilePrefix+"good-cwd"))
}

func TestInfoCache(t *testing.T) {
	t.Parallel()
	dir := mkdir(t, "plugins")
	p := install(t, dir, "pidfile-a")
	cacheDir := t.TempDir()
	cachePath := filepath.Join(cacheDir, CacheFileName)
	pidFile := filepath.Join(t.TempDir(), "pids")
	opts := Options{Dirs: []string{dir}, CacheDir: cacheDir, Env: []string{"LEM_TEST_PID_FILE=" + pidFile}}
	starts := func() int { return len(readPids(t, pidFile)) }
	check := func(step string, wantCached bool, wantStarts int) {
		t.Helper()
		cat := discover(t, opts)
		wantSelected(t, cat, "pidfile-a", p)
		c, _ := cat.Find("pidfile-a")
		if c.Cached != wantCached || starts() != wantStarts {
			t.Fatalf("%s: cached=%v starts=%d, want cached=%v starts=%d", step, c.Cached, starts(), wantCached, wantStarts)
		}
		if c.Info.Name != "pidfile-a" || c.Info.Version != "1.0.0" || len(c.Info.ConfigSchema) != 3 || c.SHA256 == "" {
			t.Fatalf("%s: info %+v sha %q", step, c.Info, c.SHA256)
		}
		if d := c.Info.ConfigSchema[0].Default; d != "100ms" {
			t.Fatalf("%s: default of %s = %#v", step, c.Info.ConfigSchema[0].Key, d)
		}
	}
	check("cold", false, 1)
	check("warm", true, 1)

	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(p, later, later); err != nil {
		t.Fatal(err)
	}
	check("mtime changed", false, 2)
	check("warm again", true, 2)

	for _, corrupt := range []string{"{not json", `{"format": 999, "entries": {}}`, ""} {
		if err := os.WriteFile(cachePath, []byte(corrupt), 0o600); err != nil {
			t.Fatal(err)
		}
		n := starts()
		check("corrupt cache "+corrupt, false, n+1)
		var f cacheFile
		raw, err := os.ReadFile(cachePath)
		if err != nil || json.Unmarshal(raw, &f) != nil || f.Format != cacheFormat || len(f.Entries) != 1 {
			t.Fatalf("cache not rewritten after %q: %v %s", corrupt, err, raw)
		}
		check("rewritten cache", true, n+1)
	}

	// A deleted binary's entry is dropped on the next save.
	q := install(t, dir, "good-b")
	discover(t, opts)
	os.Remove(q)
	discover(t, opts)
	raw, _ := os.ReadFile(cachePath)
	var f cacheFile
	if err := json.Unmarshal(raw, &f); err != nil || len(f.Entries) != 1 {
		t.Fatalf("cache entries after deleting a plugin: %v %s", err, raw)
	}
	if _, ok := f.Entries[p]; !ok {
		t.Fatalf("cache lost %s", p)
	}
}

// TestFailuresNotCached: a plugin that failed is tried again next time.
func TestFailuresNotCached(t *testing.T) {
	t.Parallel()
	dir := mkdir(t, "plugins")
	p := install(t, dir, "flaky")
	specFile := filepath.Join(t.TempDir(), "spec.json")
	write := func(mode string) {
		raw, _ := json.Marshal(map[string]specEntry{p: {Mode: mode}})
		if err := os.WriteFile(specFile, raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	opts := Options{Dirs: []string{dir}, CacheDir: t.TempDir(), Env: []string{"LEM_TEST_PLUGIN_SPEC=" + specFile}}
	write("crash")
	if cat := discover(t, opts); candidate(t, cat, p).Available {
		t.Fatal("crashing plugin available")
	}
	write("good")
	wantSelected(t, discover(t, opts), "flaky", p)
}

// TestDiscoverInterrupted: a cancelled discovery fails as interrupted. It returns only once
// the plugin it was starting is dead, which hostclient.Open currently achieves only at the end of the
// start timeout (go-plugin's Start cannot be interrupted), hence the short timeout here.
func TestDiscoverInterrupted(t *testing.T) {
	t.Parallel()
	dir := mkdir(t, "plugins")
	install(t, dir, "hang")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Discover(ctx, Options{Dirs: []string{dir}, NoCache: true, StartTimeout: 3 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("err = %v, want interrupted", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("cancelled discovery took %s", d)
	}
}

func TestByKind(t *testing.T) {
	t.Parallel()
	dir := mkdir(t, "plugins")
	install(t, dir, "good-e")
	install(t, dir, "good-l")
	install(t, dir, "good-both")
	cat := discover(t, Options{Dirs: []string{dir}, Env: []string{specEnv(t, map[string]specEntry{
		"good-l":    {Kinds: []string{"loader"}},
		"good-both": {Kinds: []string{"loader", "energy"}},
	})}})
	names := func(ps []*Plugin) string {
		var s []string
		for _, p := range ps {
			s = append(s, p.Name)
		}
		return strings.Join(s, ",")
	}
	for kind, want := range map[sdk.Kind]string{
		sdk.KindEnergy: "good-both,good-e", sdk.KindLoader: "good-both,good-l", sdk.KindEngine: "",
	} {
		if got := names(cat.ByKind(kind)); got != want {
			t.Errorf("ByKind(%s) = %q, want %q", kind, got, want)
		}
	}
}

// A plugin that is installed but serves another kind is "not installed" for that kind, and the
// message says which kinds the installed one serves instead of only where discovery looked.
func TestOpenWrongKindNamesCause(t *testing.T) {
	t.Parallel()
	dir := mkdir(t, "plugins")
	path := install(t, dir, "good-l")
	cat := discover(t, Options{Dirs: []string{dir}, Env: []string{specEnv(t, map[string]specEntry{
		"good-l": {Kinds: []string{"loader"}},
	})}})
	defer cat.Close()
	_, err := cat.Open(context.Background(), "good-l", sdk.KindEnergy)
	if !errors.Is(err, config.ErrPluginNotInstalled) || !IsUsage(err) {
		t.Fatalf("err = %v, want a usage error matching ErrPluginNotInstalled", err)
	}
	for _, want := range []string{path, "serves loader, not energy"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err = %q, want it to contain %q", err, want)
		}
	}
}
