package generatecmd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/cli"
	"github.com/lemctl/lemctl/host/cli/generatecmd"
	"github.com/lemctl/lemctl/host/discovery"
)

var (
	pluginDir string // the sdk's example loader and engine
	repoRoot  string
)

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
	tmp, err := os.MkdirTemp("", "generatecmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pluginDir = filepath.Join(tmp, "plugins")
	for _, name := range []string{"engine", "loader"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(pluginDir, "lem-plugin-example-"+name), "./examples/"+name)
		cmd.Dir = filepath.Join(repoRoot, "sdk")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build example %s: %v\n%s", name, err, b)
			os.Exit(1)
		}
	}
	// Discovery's Info cache must not leak between tests or into the user's cache.
	os.Setenv("XDG_CACHE_HOME", filepath.Join(tmp, "cache"))
	os.Unsetenv(discovery.PathEnv)
	code := m.Run()
	os.RemoveAll(tmp)
	os.Exit(code)
}

func run(t *testing.T, dir string, args ...string) (string, string, int) {
	t.Helper()
	var out, errw bytes.Buffer
	code := cli.Run(context.Background(), strings.NewReader(""), &out, &errw, append([]string{"--plugin-dir", dir, "generate"}, args...))
	return out.String(), errw.String(), code
}

// exampleIDs is the example engine's documented rule: next = (prev·31 + 7 + offset) mod 257,
// from the prompt's last id, offset = seed mod 257 when sampling; stop after EOS (256).
func exampleIDs(last, offset int64, n int) []int32 {
	var ids []int32
	for len(ids) < n {
		last = (last*31 + 7 + offset) % 257
		ids = append(ids, int32(last))
		if last == 256 {
			break
		}
	}
	return ids
}

var example = []string{"--plugin", "example-loader", "--engine-plugin", "example-engine", "--model", "example:tiny"}

func TestGenerateJSON(t *testing.T) {
	cases := []struct {
		name   string
		args   []string
		batch  int
		input  int
		output []int32
	}{
		{"ids, greedy", []string{"--ids", "9 8 5", "-n", "6"}, 1, 3, exampleIDs(5, 0, 6)},
		{"comma ids, batch 3", []string{"--ids", "1,2", "-n", "4", "--batch", "3"}, 3, 2, exampleIDs(2, 0, 4)},
		{"text is bytes to the example engine", []string{"--prompt", "hi", "-n", "5"}, 1, 2, exampleIDs('i', 0, 5)},
		{"sampling offsets by the seed", []string{"--ids", "5", "-n", "4", "--temperature", "0.7", "--seed", "3"}, 1, 1, exampleIDs(5, 3, 4)},
		{"default prompt", []string{"-n", "2"}, 1, len(generatecmd.DefaultPrompt), exampleIDs(int64(generatecmd.DefaultPrompt[len(generatecmd.DefaultPrompt)-1]), 0, 2)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stdout, stderr, code := run(t, pluginDir, append(append(slices.Clone(example), "--output", "json"), c.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var r generatecmd.Result
			if err := json.Unmarshal([]byte(stdout), &r); err != nil {
				t.Fatalf("%v: %s", err, stdout)
			}
			if len(r.Requests) != c.batch || r.Batch.Requests != c.batch || r.Engine.Plugin != "example-engine" || r.Model.Ref != "example:tiny" {
				t.Fatalf("result %+v", r)
			}
			out := 0
			for _, q := range r.Requests {
				if !slices.Equal(q.OutputIDs, c.output) || q.OutputTokens != len(c.output) || q.InputTokens != c.input {
					t.Errorf("request %s: %d in, ids %v; want %d in, %v", q.ID, q.InputTokens, q.OutputIDs, c.input, c.output)
				}
				if q.TTFTMS <= 0 || q.TTFTMS > q.E2EMS || (len(c.output) > 1) != (q.ITLMS != nil) {
					t.Errorf("request %s: TTFT %g, ITL %v, E2E %g", q.ID, q.TTFTMS, q.ITLMS, q.E2EMS)
				}
				out += q.OutputTokens
			}
			b := r.Batch
			if b.OutputTokens != out || b.InputTokens != c.batch*c.input || b.OutputTokensPerS <= 0 || b.Steps != len(c.output)-1 {
				t.Errorf("batch %+v, want %d output tokens", b, out)
			}
		})
	}
}

func TestGenerateTable(t *testing.T) {
	stdout, stderr, code := run(t, pluginDir, append(slices.Clone(example), "--ids", "5", "-n", "3")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"example:tiny", "REQUEST", "162 146 164", "TTFT ms", "tokens/s"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestGenerateUsageErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no model", []string{"--plugin", "example-loader", "--engine-plugin", "example-engine"}, 2, "--model is required"},
		{"prompt and ids", append(slices.Clone(example), "--prompt", "x", "--ids", "1"), 2, "not both"},
		{"bad ids", append(slices.Clone(example), "--ids", "1 x"), 2, `"x" is not a token id`},
		{"batch 0", append(slices.Clone(example), "--batch", "0"), 2, "--batch 0"},
		{"max-new-tokens 0", append(slices.Clone(example), "-n", "0"), 2, "--max-new-tokens 0"},
		{"top-p above 1", append(slices.Clone(example), "--temperature", "1", "--top-p", "1.5"), 2, "--top-p 1.5"},
		{"top-p without temperature", append(slices.Clone(example), "--top-p", "0.5"), 2, "need --temperature"},
		{"greedy and temperature", append(slices.Clone(example), "--greedy", "--temperature", "1"), 2, "exclude each other"},
		{"greedy=false without temperature", append(slices.Clone(example), "--greedy=false"), 2, "--greedy=false needs --temperature"},
		{"bad device", append(slices.Clone(example), "--device", "GPU 0"), 2, "--device"},
		{"bad device index", append(slices.Clone(example), "--device", "nvidia:x"), 2, "--device"},
		{"bad output", append(slices.Clone(example), "--output", "yaml"), 2, "--output"},
		{"loader is no engine", []string{"--plugin", "example-loader", "--model", "example:tiny"}, 2, "not engine"},
		{"plugin not installed", []string{"--plugin", "nope", "--model", "x"}, 2, "nope"},
		{"model the loader rejects", []string{"--plugin", "example-loader", "--engine-plugin", "example-engine", "--model", "other:x"}, 2, "example loader resolves only"},
		{"bad plugin config", append(slices.Clone(example), "--plugin-config", "no_such_key=1"), 2, "no_such_key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, stderr, code := run(t, pluginDir, c.args...)
			if code != c.code || !strings.Contains(stderr, c.msg) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", code, stderr, c.code, c.msg)
			}
		})
	}
}

// TestGenerateOnnx runs the real onnx plugin (from $LEM_BIN, as `make test` builds it) on
// synthetic:gpt2-tiny and reproduces the engine's golden greedy ids.
func TestGenerateOnnx(t *testing.T) {
	bin := os.Getenv("LEM_BIN")
	dir := filepath.Join(bin, "plugins")
	if _, err := os.Stat(filepath.Join(dir, "lem-plugin-onnx")); bin == "" || err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the onnx plugin is not built under $LEM_BIN=%q", bin)
		}
		t.Skip("the onnx plugin is not built: run `make build` and set LEM_BIN (make test does)")
	}
	raw, err := os.ReadFile(filepath.Join(repoRoot, "plugins", "onnx", "engine", "testdata", "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var golden map[string][][]int32
	if err := json.Unmarshal(raw, &golden); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := run(t, dir, "--model", "synthetic:gpt2-tiny", "--ids", "15496 11 616 1438 318", "-n", "12", "--ignore-eos",
		"--batch", "2", "--plugin-config", "cache_dir="+t.TempDir(), "--output", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r generatecmd.Result
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	for _, q := range r.Requests {
		if !slices.Equal(q.OutputIDs, golden["gpt2-tiny"][0]) || q.InputTokens != 5 || q.Text == "" {
			t.Errorf("request %s: %v %q, want the golden %v", q.ID, q.OutputIDs, q.Text, golden["gpt2-tiny"][0])
		}
	}
	if r.Engine.ExecutionProvider != "cpu" || r.Engine.RuntimeVersions["onnxruntime"] == "" || r.Engine.ModelBytes <= 0 {
		t.Errorf("engine %+v", r.Engine)
	}
}
