package e2e

import (
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/sdk/clock"
)

// simulatedNVML builds the nvml plugin (or takes it from $LEM_BIN) and the simulated
// libnvidia-ml.so.1 from plugins/nvml/testdata/fakenvml.
func simulatedNVML(t *testing.T) (pluginDir, lib string) {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("gcc is needed to build the simulated NVML library")
		}
		t.Skip("gcc not installed: cannot build the simulated NVML library")
	}
	pluginDir = installProductPlugin(t, "nvml", "CGO_ENABLED=1", "CGO_CFLAGS=-Wno-deprecated-declarations")
	dir := t.TempDir()
	mod := filepath.Join(repoRoot, "plugins", "nvml")
	list := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/NVIDIA/go-nvml")
	list.Dir = mod
	list.Env = append(os.Environ(), "GOWORK=off")
	out, err := list.Output()
	if err != nil {
		t.Fatalf("locate go-nvml: %v", err)
	}
	inc := filepath.Join(strings.TrimSpace(string(out)), "pkg", "nvml")
	lib = filepath.Join(dir, "libnvidia-ml.so.1")
	cc := exec.Command("gcc", "-shared", "-fPIC", "-O1", "-Wno-deprecated-declarations", "-Wno-format-truncation", "-I", inc,
		"-o", lib, filepath.Join(mod, "testdata", "fakenvml", "fakenvml.c"), "-lm")
	if b, err := cc.CombinedOutput(); err != nil {
		t.Fatalf("gcc fakenvml: %v\n%s", err, b)
	}
	return pluginDir, lib
}

// TestRunTwoGPUWorkersOnSimulatedNVML runs one worker per simulated GPU: each worker sees only
// its own GPU (CUDA_VISIBLE_DEVICES=<UUID>), and the aggregate adds the two GPUs' energies.
func TestRunTwoGPUWorkersOnSimulatedNVML(t *testing.T) {
	nvmlDir, lib := simulatedNVML(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "trace.txt")
	uuids := []string{"GPU-11111111-2222-3333-4444-555555555555", "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"}
	watts := []float64{200, 300}
	trace := fmt.Sprintf("gpus 2\nupdate_ms 100\ndev 0 uuid %s\ndev 1 uuid %s\nseg 0 100000 %g\nseg 1 100000 %g\n", uuids[0], uuids[1], watts[0], watts[1])
	if err := os.WriteFile(script, []byte(trace), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"LEM_FAKE_NVML_SCRIPT=" + script, "LEM_FAKE_NVML_LOG=" + filepath.Join(dir, "nvml.log"),
		fmt.Sprintf("LEM_FAKE_NVML_T0=%d", clock.Mono())}
	meter := `
[energy]
meters = ["nvml"]

[energy.nvml]
library_path = "` + lib + `"
interval = "50ms"
`
	cfg := experiment("gpus", 1, meter)
	cfg = strings.Replace(cfg, `devices = "cpu"`, `devices = [0, 1]`, 1)
	cfg = strings.Replace(cfg, "min_window_s = 0", "min_window_s = 2", 1)
	r, res := runExperiment(t, cfg, env, "--plugin-dir", nvmlDir)
	if r.code != 0 {
		t.Fatalf("run exited %d\nstderr:\n%s", r.code, r.stderr.String())
	}
	exp := experimentID(t, res)
	const edge = 0.100 // one counter update period, s
	var sum float64
	for rank := 0; rank < 2; rank++ {
		raw := readRaw(t, res, exp, rank)
		if d := raw.Device; d.Kind != "device" || d.Vendor != "nvidia" || d.UUID != uuids[rank] || d.Meter != "nvml" {
			t.Errorf("rank %d ran on %+v, want the nvidia device %s of nvml", rank, d, uuids[rank])
		}
		want := map[string]string{"CUDA_VISIBLE_DEVICES": uuids[rank], "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
		if !maps.Equal(raw.Device.SeenEnv, want) {
			t.Errorf("rank %d saw %v, want exactly nvml's visibility environment %v", rank, raw.Device.SeenEnv, want)
		}
		if f := raw.Environment.Facts; f["nvml.gpus_seen"] != "2" || f["nvml.nvml.gpus_seen"] != "" {
			t.Errorf("rank %d: environment facts %v, want nvml.gpus_seen = 2 (docs/nvml.md), once prefixed", rank, f)
		}
		var gpus []string
		for _, d := range raw.Energy.Domains {
			if d.Kind == "gpu" {
				gpus = append(gpus, d.ID)
				want := watts[rank] * raw.Window.DurationS
				if d.TotalJ == nil || math.Abs(*d.TotalJ-want) > 2*edge*watts[rank] {
					t.Errorf("rank %d: GPU energy %v J, want %g W × %.3f s = %.1f J", rank, deref(d.TotalJ), watts[rank], raw.Window.DurationS, want)
				} else {
					sum += *d.TotalJ
				}
			}
		}
		if len(gpus) != 1 || !strings.Contains(gpus[0], uuids[rank]) {
			t.Errorf("rank %d sees GPU domains %v, want only %s", rank, gpus, uuids[rank])
		}
	}
	agg := readAggregated(t, res, exp)
	if agg.Energy.TotalJ == nil || math.Abs(*agg.Energy.TotalJ-sum) > 1e-6 {
		t.Errorf("aggregate total %v J, want the sum of the two GPUs %.3f J", deref(agg.Energy.TotalJ), sum)
	}
}
