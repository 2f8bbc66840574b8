package synth_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/lemctl/lemctl/plugins/onnx/internal/testenv"
	"github.com/lemctl/lemctl/plugins/onnx/synth"
)

// helperEnv, when set to a cache folder, turns the test binary into a helper process that
// generates gpt2-tiny there and prints "generated" or "hit" (see TestEnsureAcrossProcesses).
const helperEnv = "LEMCTL_SYNTH_TEST_HELPER_CACHE"

func TestMain(m *testing.M) {
	if cache := os.Getenv(helperEnv); cache != "" {
		p, _ := synth.Lookup("gpt2-tiny")
		v := synth.Vocab{EncoderJSON: os.Getenv("HELPER_ENCODER"), VocabBPE: os.Getenv("HELPER_BPE")}
		_, gen, err := synth.Ensure(cache, p, 11, v)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(map[bool]string{true: "generated", false: "hit"}[gen])
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestEnsureAcrossProcesses starts several processes that generate the same model into one
// cache at once: exactly one generates it, the others wait and reuse it.
func TestEnsureAcrossProcesses(t *testing.T) {
	v := testenv.Vocab(t)
	cache := t.TempDir()
	const n = 4
	outs := make([]string, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), helperEnv+"="+cache, "HELPER_ENCODER="+v.EncoderJSON, "HELPER_BPE="+v.VocabBPE)
			out, err := cmd.Output()
			if err != nil {
				t.Errorf("helper %d: %v", i, err)
			}
			outs[i] = strings.TrimSpace(string(out))
		}()
	}
	wg.Wait()
	generated := 0
	for _, o := range outs {
		switch o {
		case "generated":
			generated++
		case "hit":
		default:
			t.Errorf("helper printed %q", o)
		}
	}
	if generated != 1 {
		t.Errorf("%d of %d processes generated the model (%v); want exactly 1", generated, n, outs)
	}
}
