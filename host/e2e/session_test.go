package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lemctl/lemctl/host/config"
	"github.com/lemctl/lemctl/host/config/configtest"
	"github.com/lemctl/lemctl/host/launch"
	"github.com/lemctl/lemctl/sdk"
)

// countingPlugins puts, for each product plugin, a shell script of its name into a new plugin
// directory that appends "<parent pid> <name>" to the returned log and execs the real binary: the
// log counts every start of every plugin binary, by the process that started it.
func countingPlugins(t *testing.T, names ...string) (dir, log string) {
	t.Helper()
	real := productPlugins(t, names...)
	dir = filepath.Join(t.TempDir(), "plugins")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	log = filepath.Join(t.TempDir(), "execs.log")
	for _, n := range names {
		bin := "lem-plugin-" + n
		script := fmt.Sprintf("#!/bin/sh\necho \"$PPID %s\" >> %s\nexec %s \"$@\"\n", n, log, filepath.Join(real, bin))
		if err := os.WriteFile(filepath.Join(dir, bin), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir, log
}

// execCounts reads the log of countingPlugins: starts by plugin, by starting process.
func execCounts(t *testing.T, log string) map[string]map[string]int {
	t.Helper()
	f, err := os.Open(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pid, name, _ := strings.Cut(sc.Text(), " ")
		if out[pid] == nil {
			out[pid] = map[string]int{}
		}
		out[pid][name]++
	}
	return out
}

// TestRunStartsEachPluginOnce: a 2-worker gpt2-tiny run (2 prompts, 1 new token, no warm-up, no
// minimum window) starts each plugin binary exactly once in the parent — the config check, the
// meter selection, the tokenizer and the repository share the process; onnx serves loader and
// engine from one — and at most once in each worker, where a meter with no domain available on
// this host is not started at all (its domains are still reported, with its reasons). The discovery cache is warmed first (`plugins
// list`), as on any machine after the first command. And `config check` sends each plugin the
// table the workers configure it with: the calls of config.Load (the code `config check` runs)
// on a recording configurer equal the tables of the launch specs.
func TestRunStartsEachPluginOnce(t *testing.T) {
	names := []string{"fsstore", "nvml", "onnx", "rapl"}
	dir, log := countingPlugins(t, names...)
	cache := "XDG_CACHE_HOME=" + t.TempDir()
	if code := lemctl(t, []string{cache}, "plugins", "list", "--plugin-dir", dir).wait(t, time.Minute); code != 0 {
		t.Fatalf("plugins list: exit %d", code)
	}
	if err := os.Remove(log); err != nil {
		t.Fatal(err)
	}
	resultsDir := filepath.Join(t.TempDir(), "results")
	example := filepath.Join(repoRoot, "examples", "cpu-2workers.toml")
	sets := []string{"workload.max_new_tokens=1", "lifecycle.warmup.batches=0", "workload.min_window_s=0"}
	args := []string{"run", example, "-n", "2", "--plugin-dir", dir, "--results-dir", resultsDir, "--progress", "quiet"}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	r := lemctl(t, []string{cache}, args...)
	if code := r.wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("run: exit %d\n%s", code, r.stderr.String())
	}

	counts := execCounts(t, log)
	parent := fmt.Sprint(r.cmd.Process.Pid)
	// The workers start the loader/engine and the repository, and each meter that has a domain
	// available on this host; one with none (no NVML library, no powercap) is not started.
	wantWorker := map[string]int{"onnx": 1, "fsstore": 1}
	for _, m := range readSpec(t, resultsDir, 0).Meters {
		if m.Unavailable == nil {
			wantWorker[m.Name] = 1
		} else if len(m.Unavailable.Domains) == 0 {
			t.Errorf("meter %s is marked unavailable without its domains", m.Name)
		}
	}
	workers := 0
	for pid, byName := range counts {
		want := wantWorker
		if pid == parent {
			want = map[string]int{"fsstore": 1, "nvml": 1, "onnx": 1, "rapl": 1}
		} else {
			workers++
		}
		if !reflect.DeepEqual(byName, want) {
			t.Errorf("process %s (parent %s) started %v, want %v", pid, parent, byName, want)
		}
	}
	if counts[parent] == nil || workers != 2 {
		t.Errorf("plugin starts by process %v: want the parent (%s) and 2 workers", counts, parent)
	}

	// The tables config check sends are the tables the workers run with.
	rec := &configtest.Configurer{}
	for _, n := range names {
		kinds := []sdk.Kind{sdk.KindEnergy}
		switch n {
		case "onnx":
			kinds = []sdk.Kind{sdk.KindLoader, sdk.KindEngine}
		case "fsstore":
			kinds = []sdk.Kind{sdk.KindRepository}
		}
		rec.Plugins = append(rec.Plugins, configtest.Plugin{Name: n, Kinds: kinds, Schema: []sdk.ConfigKey{{Key: "path", Type: sdk.TypeString}}})
	}
	two := 2
	if _, err := config.LoadFile(context.Background(), example, config.Options{Configurer: rec, ResultsDir: resultsDir,
		Overrides: config.Overrides{Prompts: &two, Set: sets}}); err != nil {
		t.Fatal(err)
	}
	checked := map[string]map[string]any{}
	for _, c := range rec.Calls {
		checked[c.Plugin+"/"+string(c.Kind)] = jsonRound(t, c.Table)
	}
	specs, _ := filepath.Glob(filepath.Join(resultsDir, "runs", "*", "worker_*.spec.json"))
	if len(specs) != 2 {
		t.Fatalf("want 2 worker specs, got %v", specs)
	}
	for _, path := range specs {
		spec := readSpecFile(t, path)
		ran := map[string]map[string]any{
			"onnx/loader":        jsonRound(t, spec.Model.Loader.Config),
			"onnx/engine":        jsonRound(t, spec.Engine.Config),
			"fsstore/repository": jsonRound(t, spec.Repository.Config),
		}
		for _, m := range spec.Meters {
			ran[m.Name+"/energy"] = jsonRound(t, m.Config)
		}
		for k, table := range ran {
			if want, ok := checked[k]; !ok && len(table) > 0 {
				t.Errorf("%s: %s runs with %v but config check never sent it a table", path, k, table)
			} else if ok && !reflect.DeepEqual(want, table) {
				t.Errorf("%s: %s: config check sent %v, the worker configures %v", path, k, want, table)
			}
		}
		if ran["fsstore/repository"]["path"] != resultsDir {
			t.Errorf("%s: repository table %v, want path %s", path, ran["fsstore/repository"], resultsDir)
		}
	}
}

func readSpec(t *testing.T, resultsDir string, rank int) *launch.Spec {
	t.Helper()
	specs, _ := filepath.Glob(filepath.Join(resultsDir, "runs", "*", fmt.Sprintf("worker_%d.spec.json", rank)))
	if len(specs) != 1 {
		t.Fatalf("want one spec of rank %d, got %v", rank, specs)
	}
	return readSpecFile(t, specs[0])
}

func readSpecFile(t *testing.T, path string) *launch.Spec {
	t.Helper()
	var spec launch.Spec
	b, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(b, &spec)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &spec
}

func jsonRound(t *testing.T, v map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
