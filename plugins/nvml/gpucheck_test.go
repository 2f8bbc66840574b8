package nvml_test

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/lemctl/lemctl/sdk/clock"
)

// TestGPUCheckDryRun runs scripts/gpu-check.sh --dry-run end to end on the simulated library: the
// built lemctl and plugin from $LEM_BIN, testdata/pynvml_stub standing in for nvidia-ml-py, and
// one simulated GPU timeline shared by every process (LEM_FAKE_NVML_T0). It proves the script's
// plumbing before it meets real hardware: our energy against the counter read through "pynvml"
// over lemctl's window, counter against integrated instant power, the update period.
func TestGPUCheckDryRun(t *testing.T) {
	bin := os.Getenv("LEM_BIN")
	if bin == "" {
		t.Skip("LEM_BIN is not set: the dry run needs the built lemctl and plugins (make test sets it)")
	}
	if _, err := os.Stat(filepath.Join(bin, "lemctl")); err != nil {
		t.Skipf("no lemctl in LEM_BIN: %v", err)
	}
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("no python3")
	}
	lib := fakeLibrary(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "script.txt")
	if err := os.WriteFile(script, []byte("seg 0 1.5 90\nseg 0 2 450\nseg 0 10 120\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stub, err := filepath.Abs(filepath.Join("testdata", "pynvml_stub"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	cmd := exec.Command("bash", filepath.Join("..", "..", "scripts", "gpu-check.sh"), "--bin", bin, "--duration", "3", "--dry-run",
		"--out", out, "--set", `nvml.library_path="`+lib+`"`)
	cmd.Env = append(os.Environ(), "LEM_FAKE_NVML_LIB="+lib, "LEM_FAKE_NVML_SCRIPT="+script,
		"LEM_FAKE_NVML_T0="+strconv.FormatInt(clock.Mono(), 10), "PYTHONPATH="+stub)
	b, err := cmd.CombinedOutput()
	t.Logf("%s", b)
	if err != nil {
		t.Fatalf("gpu-check.sh: %v", err)
	}
	var sum struct {
		Lemctl struct {
			EnergyJ    *float64 `json:"energy_j"`
			PeakPowerW *float64 `json:"peak_power_w"`
		} `json:"lemctl"`
		Plumbing struct {
			LemctlWindowJ *float64 `json:"pynvml_lemctl_window_j"`
		} `json:"plumbing"`
		CounterVsInstant struct {
			DiffPct *float64 `json:"diff_pct"`
		} `json:"counter_vs_instant"`
		UpdatePeriod struct {
			Median float64 `json:"median"`
		} `json:"update_period_ms"`
		PluginCPU struct {
			SharePct *float64 `json:"share_pct"`
		} `json:"plugin_cpu"`
	}
	raw, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Lemctl.EnergyJ == nil || sum.Plumbing.LemctlWindowJ == nil || sum.Lemctl.PeakPowerW == nil {
		t.Fatalf("missing figures: %s", raw)
	}
	// Both read the same counter, which moves every 100 ms: they may differ by one update at each edge.
	if edge := 2 * 0.1 * *sum.Lemctl.PeakPowerW; math.Abs(*sum.Lemctl.EnergyJ-*sum.Plumbing.LemctlWindowJ) > edge+1 {
		t.Errorf("our %.3f J vs the counter over lemctl's window %.3f J: more than %.1f J apart", *sum.Lemctl.EnergyJ, *sum.Plumbing.LemctlWindowJ, edge)
	}
	if d := sum.CounterVsInstant.DiffPct; d == nil || math.Abs(*d) > 2 {
		t.Errorf("counter vs integrated instant power: %v %%", d)
	}
	if m := sum.UpdatePeriod.Median; m < 90 || m > 110 {
		t.Errorf("observed update period %.1f ms, the simulation updates every 100 ms", m)
	}
	if sum.PluginCPU.SharePct == nil {
		t.Errorf("no plugin CPU share")
	}
}
