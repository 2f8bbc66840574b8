package config_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/lemctl/lemctl/host/config"
	"github.com/lemctl/lemctl/host/config/configtest"
	"github.com/lemctl/lemctl/sdk"
)

// render writes an error the way the .want files do: "LINE: key: message (valid: …)" without
// the file name, or "flag …: …" for a value from the command line.
func render(e *config.Error) string {
	if e.Source != "" {
		return e.Error()
	}
	line := e.Line
	e2 := *e
	e2.File, e2.Line = "", 0
	return strconv.Itoa(line) + ": " + e2.Error()
}

// overridesOf reads "#! set: …", "#! d: …" and "#! n: …" lines at the top of a corpus file.
func overridesOf(t *testing.T, data []byte) config.Overrides {
	t.Helper()
	var o config.Overrides
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "#! ") {
			break
		}
		k, v, _ := strings.Cut(strings.TrimPrefix(line, "#! "), ": ")
		switch k {
		case "set":
			o.Set = append(o.Set, v)
		case "d":
			o.Dataset = v
		case "n":
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("bad #! n: %v", err)
			}
			o.Prompts = &n
		default:
			t.Fatalf("unknown directive %q", line)
		}
	}
	return o
}

// TestBadCorpus loads every testdata/bad/*.toml and asserts exactly the errors its .want file
// lists, in order, each with its line.
func TestBadCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 30 {
		t.Fatalf("corpus has %d bad configs, want ≥ 30", len(files))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".toml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			wantData, err := os.ReadFile(strings.TrimSuffix(file, ".toml") + ".want")
			if err != nil {
				t.Fatal(err)
			}
			wants := strings.Split(strings.TrimSpace(string(wantData)), "\n")
			cfg, err := config.Load(context.Background(), file, data, config.Options{
				Overrides:  overridesOf(t, data),
				Configurer: configtest.Standard(),
			})
			if err == nil {
				t.Fatalf("loaded without error: %+v", cfg)
			}
			var errs config.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, want config.Errors: %v", err, err)
			}
			var got []string
			for _, e := range errs {
				got = append(got, render(e))
				if e.Source == "" && e.File != file {
					t.Errorf("error names file %q, want %q", e.File, file)
				}
			}
			if len(got) != len(wants) {
				t.Fatalf("got %d errors, want %d:\n%s\nwant:\n%s", len(got), len(wants), strings.Join(got, "\n"), strings.Join(wants, "\n"))
			}
			for i := range wants {
				if !strings.HasPrefix(got[i], wants[i]) {
					t.Errorf("error %d:\n got %s\nwant %s…", i, got[i], wants[i])
				}
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		e    config.Error
		want string
	}{
		{config.Error{File: "x.toml", Line: 3, Key: "a.b", Message: "bad", Valid: "1"}, "x.toml:3: a.b: bad (valid: 1)"},
		{config.Error{File: "x.toml", Key: "model.ref", Message: "missing (required)"}, "x.toml: model.ref: missing (required)"},
		{config.Error{File: "x.toml", Source: "flag -n", Key: "workload.prompts", Message: "-1 is out of range"}, "flag -n: workload.prompts: -1 is out of range"},
		{config.Error{File: "x.toml", Message: "cannot read config: no such file"}, "x.toml: cannot read config: no such file"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

const minimal = "[model]\nref = \"synthetic:gpt2-tiny\"\n"

func TestDefaults(t *testing.T) {
	cfg, err := config.Load(context.Background(), "dir/my-exp.toml", []byte(minimal), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"name from file", cfg.Name, "my-exp"},
		{"model.plugin", cfg.Model.Plugin, "onnx"},
		{"engine.plugin", cfg.Engine.Plugin, "onnx"},
		{"dataset", cfg.Workload.Dataset, "builtin"},
		{"order", cfg.Workload.Order, "sequential"},
		{"batch_size", cfg.Workload.BatchSize, 8},
		{"max_new_tokens", cfg.Workload.MaxNewTokens, 128},
		{"repeats", cfg.Workload.Repeats, 1},
		{"min_window_s", cfg.Workload.MinWindowS, 10.0},
		{"greedy", cfg.Workload.Decoding.Greedy, true},
		{"ignore_eos", cfg.Workload.Decoding.IgnoreEOS, true},
		{"devices", cfg.Launch.Devices.IsCPU(), true},
		{"processes_per_device", cfg.Launch.ProcessesPerDevice, 1},
		{"baseline_s", cfg.Lifecycle.BaselineS, 30.0},
		{"warmup mode", cfg.Lifecycle.Warmup.Mode, "cv"},
		{"meters", cfg.Energy.Meters.Auto, true},
		{"repository", cfg.Repository.Plugin, "fsstore"},
		{"validity.min_window_s", cfg.Validity.MinWindowS, 10.0},
		{"validity.min_counter_updates", cfg.Validity.MinCounterUpdates, 10},
		{"validity.temperature_drift_c", cfg.Validity.TemperatureDriftC, 10.0},
		{"validity.integration_mismatch", cfg.Validity.IntegrationMismatch, 0.10},
		{"validity.min_window_overlap", cfg.Validity.MinWindowOverlap, 0.5},
		{"plugin tables unchecked", cfg.PluginTablesChecked, false},
		{"DefaultValidity is the loaded defaults", config.DefaultValidity(), cfg.Validity},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if len(cfg.Sources) != 0 {
		t.Errorf("sources = %v, want none", cfg.Sources)
	}
}

func TestOverridesBeatFileAndRecordSources(t *testing.T) {
	fsys := fstest.MapFS{"data/p.jsonl": {Data: []byte(`{"prompt":"x"}` + "\n")}}
	file := minimal + "[workload]\nbatch_size = 2\nprompts = 10\ndataset = \"builtin\"\n[engine]\nintra_op_threads = 1\n"
	n := 3
	cfg, err := config.Load(context.Background(), "e.toml", []byte(file), config.Options{
		FS: fsys,
		Overrides: config.Overrides{Dataset: "data/p.jsonl", Prompts: &n, Set: []string{
			"workload.batch_size=4", `launch.devices=[0, "GPU-1234"]`, "engine.intra_op_threads=2",
			"workload.order=shuffle", // a bare word is a string
		}},
		Configurer: configtest.Standard(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Workload.BatchSize != 4 || cfg.Workload.Prompts != 3 || cfg.Workload.Dataset != "data/p.jsonl" || cfg.Workload.Order != "shuffle" {
		t.Errorf("overrides not applied: %+v", cfg.Workload)
	}
	if got := strings.Join(cfg.Launch.Devices, ","); got != "0,GPU-1234" {
		t.Errorf("devices = %s", got)
	}
	if cfg.Engine.Options["intra_op_threads"] != int64(2) {
		t.Errorf("engine options = %v", cfg.Engine.Options)
	}
	want := map[string]string{
		"workload.batch_size": "flag --set", "launch.devices": "flag --set", "engine.intra_op_threads": "flag --set",
		"workload.order": "flag --set", "workload.dataset": "flag -d", "workload.prompts": "flag -n",
	}
	if len(cfg.Sources) != len(want) {
		t.Errorf("sources = %v, want %v", cfg.Sources, want)
	}
	for k, v := range want {
		if cfg.Sources[k] != v {
			t.Errorf("source of %s = %q, want %q", k, cfg.Sources[k], v)
		}
	}
	if !cfg.PluginTablesChecked {
		t.Error("PluginTablesChecked = false with a configurer")
	}
}

// permFS answers every Open with a permission error, as a root-owned unreadable file would for
// a normal user (tests cannot rely on chmod: CI runs as root).
type permFS struct{ files fstest.MapFS }

func (f permFS) Open(name string) (fs.File, error) {
	if _, ok := f.files[name]; ok {
		return f.files.Open(name)
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
}

func TestFileAccessErrors(t *testing.T) {
	fsys := permFS{fstest.MapFS{"ok.toml": {Data: []byte(minimal + "[workload]\ndataset = \"secret.jsonl\"\n")}}}
	_, err := config.LoadFile(context.Background(), "locked.toml", config.Options{FS: fsys})
	if err == nil || err.Error() != "locked.toml: cannot read config: permission denied" {
		t.Errorf("unreadable config: %v", err)
	}
	_, err = config.LoadFile(context.Background(), "ok.toml", config.Options{FS: fsys})
	if err == nil || !strings.Contains(err.Error(), `ok.toml:4: workload.dataset: dataset file "secret.jsonl": permission denied`) {
		t.Errorf("unreadable dataset: %v", err)
	}
	_, err = config.LoadFile(context.Background(), "missing.toml", config.Options{FS: fstest.MapFS{}})
	if err == nil || err.Error() != "missing.toml: cannot read config: no such file" {
		t.Errorf("missing config: %v", err)
	}
}

// TestPluginCalls: every plugin is sent its one resolved table: onnx serves loader and engine,
// so both checks send [model] and [engine] merged, as the run configures it; the repository's
// table has the resolved results path.
func TestPluginCalls(t *testing.T) {
	c := configtest.Standard()
	file := minimal + "[engine]\nexecution_provider = \"cpu\"\n[energy]\nmeters = [\"rapl\"]\n[energy.rapl]\nzones = [\"package-0\"]\n"
	cfg, err := config.Load(context.Background(), "e.toml", []byte(file), config.Options{Configurer: c, ResultsDir: "/r"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, call := range c.Calls {
		got[call.Plugin+"/"+string(call.Kind)] = len(call.Table)
	}
	want := map[string]int{"onnx/loader": 1, "onnx/engine": 1, "rapl/energy": 1, "fsstore/repository": 1}
	if len(got) != len(want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("call %s with %d keys, want %d", k, got[k], v)
		}
	}
	if cfg.Energy.Tables["rapl"] == nil || cfg.Engine.Options["execution_provider"] != "cpu" {
		t.Errorf("plugin tables not kept: %+v %+v", cfg.Energy, cfg.Repository)
	}
	for _, call := range c.Calls {
		if !reflect.DeepEqual(call.Table, cfg.PluginTable(call.Plugin)) {
			t.Errorf("%s/%s checked with %v, but runs with %v", call.Plugin, call.Kind, call.Table, cfg.PluginTable(call.Plugin))
		}
	}
	if got := cfg.PluginTable("fsstore")["path"]; got != "/r" {
		t.Errorf("repository table path = %v, want /r", got)
	}
}

func TestPluginFailureIsReported(t *testing.T) {
	c := configtest.Standard()
	c.Plugins[0].Fail = errors.New("plugin exited")
	_, err := config.Load(context.Background(), "e.toml", []byte(minimal), config.Options{Configurer: c})
	if err == nil || !strings.Contains(err.Error(), `e.toml:1: model: loader plugin "onnx" could not check its table: plugin exited`) {
		t.Errorf("got %v", err)
	}
}

func TestWarnings(t *testing.T) {
	file := minimal + "[workload]\nmin_window_s = 5\n[workload.decoding]\ntemperature = 0.7\n"
	cfg, err := config.Load(context.Background(), "e.toml", []byte(file), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(cfg.Warnings, "\n")
	for _, w := range []string{"workload.min_window_s (5 s) is below validity.min_window_s (10 s)", "workload.decoding.temperature is ignored"} {
		if !strings.Contains(joined, w) {
			t.Errorf("warnings %q lack %q", joined, w)
		}
	}
}

func TestParseSet(t *testing.T) {
	for _, tc := range []struct {
		arg     string
		key     string
		value   any
		wantErr string
	}{
		{arg: "workload.batch_size=4", key: "workload.batch_size", value: int64(4)},
		{arg: "workload.min_window_s = 1.5", key: "workload.min_window_s", value: 1.5},
		{arg: `workload.dataset="a b.jsonl"`, key: "workload.dataset", value: "a b.jsonl"},
		{arg: "workload.dataset=data/x.jsonl", key: "workload.dataset", value: "data/x.jsonl"},
		{arg: `energy."my meter".x=true`, key: "energy\x1fmy meter\x1fx", value: true},
		{arg: "x", wantErr: "is not key.path=VALUE"},
		{arg: "=4", wantErr: "is not key.path=VALUE"},
		{arg: "a=", wantErr: "has no value"},
		{arg: "a=[1,", wantErr: "is not a TOML value"},
	} {
		segs, v, err := config.ParseSet(tc.arg)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: err = %v, want %q", tc.arg, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.arg, err)
			continue
		}
		key := strings.Join(segs, ".")
		if strings.Contains(tc.key, "\x1f") {
			key = strings.Join(segs, "\x1f")
		}
		if key != tc.key || v != tc.value {
			t.Errorf("%s: got %s=%#v, want %s=%#v", tc.arg, key, v, tc.key, tc.value)
		}
	}
}

func TestErrorsUnwrap(t *testing.T) {
	_, err := config.Load(context.Background(), "e.toml", []byte("[model]\nref = 1\n"), config.Options{})
	var one *config.Error
	if !errors.As(err, &one) || one.Key != "model.ref" || one.Line != 2 {
		t.Errorf("errors.As(*Error) = %+v from %v", one, err)
	}
	nie := &config.PluginNotInstalledError{Plugin: "x", Kind: "energy", Searched: []string{"/a", "/b"}}
	if !errors.Is(nie, config.ErrPluginNotInstalled) || nie.Error() != `energy plugin "x" is not installed (searched /a, /b)` {
		t.Errorf("PluginNotInstalledError: %v", nie)
	}
	// A configurer that reports the sentinel without the typed error still names the plugin.
	c := config.PluginConfigurerFunc(func(_ context.Context, plugin string, kind sdk.Kind, _ map[string]any) ([]sdk.ConfigError, error) {
		return nil, fmt.Errorf("lookup %s: %w", plugin, config.ErrPluginNotInstalled)
	})
	_, err = config.Load(context.Background(), "e.toml", []byte(minimal), config.Options{Configurer: c})
	if err == nil || !strings.Contains(err.Error(), `e.toml:1: model.plugin: loader plugin "onnx" is not installed`) {
		t.Errorf("sentinel: %v", err)
	}
}

func TestMetersJSON(t *testing.T) {
	for _, tc := range []struct {
		m    config.Meters
		json string
	}{
		{config.Meters{Auto: true}, `"auto"`},
		{config.Meters{Names: []string{}}, `[]`},
		{config.Meters{Names: []string{"nvml", "rapl"}}, `["nvml","rapl"]`},
	} {
		b, err := json.Marshal(tc.m)
		if err != nil || string(b) != tc.json {
			t.Errorf("marshal %+v = %s, %v", tc.m, b, err)
		}
		var back config.Meters
		if err := json.Unmarshal(b, &back); err != nil || back.Auto != tc.m.Auto || len(back.Names) != len(tc.m.Names) {
			t.Errorf("unmarshal %s = %+v, %v", b, back, err)
		}
	}
	var m config.Meters
	if err := json.Unmarshal([]byte(`"all"`), &m); err == nil {
		t.Error(`"all" accepted`)
	}
}

func TestSourceLines(t *testing.T) {
	n := 4
	cfg, err := config.Load(context.Background(), "e.toml", []byte(minimal), config.Options{Overrides: config.Overrides{Prompts: &n, Set: []string{"workload.seed=3"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.SourceLines(), "|"); got != "workload.prompts: flag -n|workload.seed: flag --set" {
		t.Errorf("got %q", got)
	}
}

// TestRepositoryWithoutPathFailsTheCheck: the repository's table is checked with the results
// path in it, as the run configures it, so a repository plugin without a `path` key fails
// `config check` rather than the run.
func TestRepositoryWithoutPathFailsTheCheck(t *testing.T) {
	c := configtest.Standard()
	c.Plugins = append(c.Plugins, configtest.Plugin{Name: "s3store", Kinds: []sdk.Kind{sdk.KindRepository},
		Schema: []sdk.ConfigKey{{Key: "bucket", Type: sdk.TypeString}}})
	file := minimal + "[repository]\nplugin = \"s3store\"\nbucket = \"b\"\n"
	_, err := config.Load(context.Background(), "e.toml", []byte(file), config.Options{Configurer: c, ResultsDir: "/r"})
	if err == nil || !strings.Contains(err.Error(), `e.toml:3: repository.path: unknown key`) || !strings.Contains(err.Error(), `(reported by repository plugin "s3store")`) {
		t.Errorf("got %v, want repository.path reported by s3store", err)
	}
	file = minimal + "[repository]\npath = \"/data/results\"\n"
	cfg, err := config.Load(context.Background(), "e.toml", []byte(file), config.Options{Configurer: c, ResultsDir: "/r"})
	if err != nil || cfg.PluginTable("fsstore")["path"] != "/data/results" {
		t.Errorf("repository.path beats the results dir in the table: %v %v", err, cfg.PluginTable("fsstore"))
	}
}

func TestOverrideValuesNameTheirSource(t *testing.T) {
	o := config.Options{Overrides: config.Overrides{Values: []config.Setting{
		{Key: "workload.batch_size", Value: int64(3), Source: "s.toml point p01"},
		{Key: "workload.batchsize", Value: int64(3), Source: "s.toml point p02"},
		{Key: "workload.prompts", Value: "many", Source: "s.toml point p03"},
		{Key: "a..b", Value: int64(1), Source: "s.toml point p04"},
	}}}
	_, err := config.Load(context.Background(), "e.toml", []byte(minimal), o)
	if err == nil {
		t.Fatal("want errors")
	}
	msg := err.Error()
	for _, want := range []string{"s.toml point p02", "batchsize", "s.toml point p03", "workload.prompts", "s.toml point p04", "is not a dotted key"} {
		if !strings.Contains(msg, want) {
			t.Errorf("errors %q lack %q", msg, want)
		}
	}
	if strings.Contains(msg, "p01") {
		t.Errorf("a valid setting is reported: %q", msg)
	}
	cfg, err := config.Load(context.Background(), "e.toml", []byte(minimal), config.Options{Overrides: config.Overrides{Values: []config.Setting{
		{Key: "workload.batch_size", Value: int64(3), Source: "s.toml point p01"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Workload.BatchSize != 3 || cfg.Sources["workload.batch_size"] != "s.toml point p01" {
		t.Errorf("batch_size %d from %q; want 3 from the point", cfg.Workload.BatchSize, cfg.Sources["workload.batch_size"])
	}
	if segs, err := config.ParseKey(`energy."my meter".power_w`); err != nil || len(segs) != 3 || segs[1] != "my meter" {
		t.Errorf("ParseKey = %q, %v", segs, err)
	}
}

// TestModelPrecision: model.precision selects a synthetic preset's quantised variant, agrees
// with a suffix that names the same precision, and is a config error naming both keys when the
// suffix names another.
func TestModelPrecision(t *testing.T) {
	for _, tc := range []struct{ ref, precision, wantRef, wantErr string }{
		{"synthetic:gpt2-124m", "int4", "synthetic:gpt2-124m-q4", ""},
		{"synthetic:gpt2-124m?seed=3", "int8", "synthetic:gpt2-124m-q8?seed=3", ""},
		{"synthetic:gpt2-124m", "fp32", "synthetic:gpt2-124m", ""},
		{"synthetic:gpt2-124m-q4", "auto", "synthetic:gpt2-124m-q4", ""},
		{"synthetic:gpt2-124m-q4", "int4", "synthetic:gpt2-124m-q4", ""},
		{"/models/gpt2", "int8", "/models/gpt2", ""},
		{"synthetic:gpt2-124m-q8", "int4", "", `e.toml:3: model.precision: "int4" conflicts with model.ref "synthetic:gpt2-124m-q8", whose preset "gpt2-124m-q8" is int8`},
		{"synthetic:gpt2-124m-q4", "fp32", "", `model.precision: "fp32" conflicts with model.ref "synthetic:gpt2-124m-q4"`},
		{"synthetic:gpt2-124m", "int2", "", `model.precision`},
	} {
		file := fmt.Sprintf("[model]\nref = %q\nprecision = %q\n", tc.ref, tc.precision)
		cfg, err := config.Load(context.Background(), "e.toml", []byte(file), config.Options{})
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s + %s: error %v, want one containing %q", tc.ref, tc.precision, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s + %s: %v", tc.ref, tc.precision, err)
			continue
		}
		if cfg.Model.Ref != tc.wantRef || cfg.Model.Precision != tc.precision {
			t.Errorf("%s + %s: ref %q precision %q, want ref %q", tc.ref, tc.precision, cfg.Model.Ref, cfg.Model.Precision, tc.wantRef)
		}
	}
}
