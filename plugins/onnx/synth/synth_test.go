package synth_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lemctl/lemctl/plugins/onnx/internal/testenv"
	"github.com/lemctl/lemctl/plugins/onnx/model"
	"github.com/lemctl/lemctl/plugins/onnx/synth"
)

func TestPresetParameters(t *testing.T) {
	for _, tc := range []struct {
		preset string
		want   int64
	}{
		// GPT-2 small: wte 50257·768 + wpe 1024·768 + 12 × 7,087,872 + ln_f 1536.
		{"gpt2-124m", 124_439_808},
		// 50257·64 + 128·64 + 2 × (2·128 + 64·192+192 + 64·64+64 + 64·256+256 + 256·64+64) + 128.
		{"gpt2-tiny", 50257*64 + 128*64 + 2*(2*128+64*192+192+64*64+64+64*256+256+256*64+64) + 128},
		// 50257·64 (embed) + 2 × (64 + 3·64·64 + 64·32 ... ) + 64 + 64·50257 (untied head).
		{"llama-tiny", 50257*64 + 2*(64+64*64+2*64*32+64*64+64+3*64*176) + 64 + 64*50257},
	} {
		p, ok := synth.Lookup(tc.preset)
		if !ok {
			t.Fatalf("preset %s missing", tc.preset)
		}
		if got := p.Parameters(); got != tc.want {
			t.Errorf("%s: %d parameters, want %d", tc.preset, got, tc.want)
		}
		// Quantised presets have the same parameters (the tied head's quantised copy not
		// counted again).
		for _, suf := range []string{"-q8", "-q4"} {
			q, ok := synth.Lookup(tc.preset + suf)
			if !ok || q.Parameters() != tc.want || q.Name != tc.preset+suf || q.Base != tc.preset {
				t.Errorf("%s%s: found %v, %d parameters, name %q base %q", tc.preset, suf, ok, q.Parameters(), q.Name, q.Base)
			}
		}
	}
	if got, want := synth.PresetList(), "gpt2-124m, gpt2-tiny, llama-tiny (each also as <preset>-q8 or <preset>-q4: int8 or int4 weights)"; got != want {
		t.Errorf("PresetList = %q, want %q", got, want)
	}
}

func readAll(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

func TestDeterministic(t *testing.T) {
	v := testenv.Vocab(t)
	for _, name := range []string{"gpt2-tiny", "llama-tiny"} {
		t.Run(name, func(t *testing.T) {
			p, _ := synth.Lookup(name)
			build := func(seed uint64) map[string][]byte {
				dir := t.TempDir()
				if err := synth.Build(dir, p, seed, v); err != nil {
					t.Fatal(err)
				}
				return readAll(t, dir)
			}
			a, b, c := build(7), build(7), build(8)
			if len(a) != 7 {
				t.Errorf("wrote %d files, want 7", len(a))
			}
			for f := range a {
				if !bytes.Equal(a[f], b[f]) {
					t.Errorf("%s differs between two builds with the same seed", f)
				}
			}
			if bytes.Equal(a[model.DataFile], c[model.DataFile]) {
				t.Errorf("seeds 7 and 8 gave the same weights")
			}
			if len(a[model.DataFile]) != len(c[model.DataFile]) {
				t.Errorf("weight file size depends on the seed")
			}
		})
	}
}

func TestONNXChecker(t *testing.T) {
	v := testenv.Vocab(t)
	py := testenv.Python(t)
	for _, name := range []string{"gpt2-tiny", "llama-tiny"} {
		t.Run(name, func(t *testing.T) {
			p, _ := synth.Lookup(name)
			dir := t.TempDir()
			if err := synth.Build(dir, p, 0, v); err != nil {
				t.Fatal(err)
			}
			// full_check also runs shape inference over the whole graph.
			script := `import sys, onnx
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m, full_check=True)
assert m.opset_import[0].version == 17, m.opset_import
print(len(m.graph.initializer))`
			out, err := exec.Command(py, "-c", script, filepath.Join(dir, model.ModelFile)).CombinedOutput()
			if err != nil {
				t.Fatalf("onnx.checker rejected %s: %v\n%s", name, err, out)
			}
		})
	}
}

func TestEnsureCachesAndIsConcurrencySafe(t *testing.T) {
	v := testenv.Vocab(t)
	p, _ := synth.Lookup("gpt2-tiny")
	cache := t.TempDir()
	var wg sync.WaitGroup
	var mu sync.Mutex
	generated := 0
	dirs := map[string]bool{}
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir, gen, err := synth.Ensure(cache, p, 3, v)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			dirs[dir] = true
			if gen {
				generated++
			}
		}()
	}
	wg.Wait()
	if generated != 1 || len(dirs) != 1 {
		t.Fatalf("4 concurrent Ensure calls generated %d times into %d folders; want once into one", generated, len(dirs))
	}
	for dir := range dirs {
		if want := filepath.Join(cache, fmt.Sprintf("gpt2-tiny-s3-g%d", synth.GeneratorVersion)); dir != want {
			t.Errorf("cache folder %s, want %s", dir, want)
		}
		// Nothing but the model folder and its lock file is left behind.
		es, _ := os.ReadDir(cache)
		for _, e := range es {
			if strings.HasPrefix(e.Name(), ".tmp-") {
				t.Errorf("temporary folder %s left in the cache", e.Name())
			}
		}
		// An incomplete folder (a file deleted) is regenerated.
		os.Remove(filepath.Join(dir, model.MergesTxt))
		if _, gen, err := synth.Ensure(cache, p, 3, v); err != nil || !gen {
			t.Errorf("incomplete cache folder: generated=%v err=%v; want regenerated", gen, err)
		}
	}
}

func TestEnsureUnwritableCache(t *testing.T) {
	v := testenv.Vocab(t)
	p, _ := synth.Lookup("gpt2-tiny")
	// A regular file where a folder should be: fails even for root (CI runs as root).
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, []byte("x"), 0o644)
	_, _, err := synth.Ensure(filepath.Join(file, "cache"), p, 0, v)
	if !errors.Is(err, synth.ErrCacheNotWritable) {
		t.Fatalf("err = %v, want ErrCacheNotWritable", err)
	}
	if !strings.Contains(err.Error(), file) {
		t.Errorf("error %q does not name the folder", err)
	}
}

// BenchmarkBuildGPT2Tiny measures generating gpt2-tiny (graph + 13 MB of weights) from scratch.
func BenchmarkBuildGPT2Tiny(b *testing.B) {
	v := testenv.Vocab(b)
	p, _ := synth.Lookup("gpt2-tiny")
	b.SetBytes(p.Parameters() * 4)
	for b.Loop() {
		dir := b.TempDir()
		if err := synth.Build(dir, p, 0, v); err != nil {
			b.Fatal(err)
		}
	}
}
