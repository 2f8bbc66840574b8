package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lemctl/lemctl/host/study"
	"github.com/lemctl/lemctl/sdk/clock"
)

// TestSweepThermalWaitOnSimulatedNVML sweeps two cycles on one simulated GPU whose temperature
// the fake library scripts: steady, the wait after the gap ends at once, recorded on the second
// run; rising 20 °C a second, it never comes back within 1 °C of the reference, and the sweep
// warns, naming the domain, goes on, and records the timeout in the manifest and the aggregate.
func TestSweepThermalWaitOnSimulatedNVML(t *testing.T) {
	nvmlDir, lib := simulatedNVML(t)
	for _, tc := range []struct {
		name    string
		slope   float64
		timeout bool
	}{{"steady", 0, false}, {"rising", 20, true}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			script := filepath.Join(dir, "trace.txt")
			uuid := "GPU-11111111-2222-3333-4444-555555555555"
			trace := fmt.Sprintf("gpus 1\nupdate_ms 100\ndev 0 uuid %s\ndev 0 temp 40 %g\nseg 0 100000 150\n", uuid, tc.slope)
			if err := os.WriteFile(script, []byte(trace), 0o644); err != nil {
				t.Fatal(err)
			}
			env := []string{"LEM_FAKE_NVML_SCRIPT=" + script, "LEM_FAKE_NVML_LOG=" + filepath.Join(dir, "nvml.log"),
				fmt.Sprintf("LEM_FAKE_NVML_T0=%d", clock.Mono())}
			base := experiment("thermal", 1, `
[energy]
meters = ["nvml"]

[energy.nvml]
library_path = "`+lib+`"
interval = "50ms"
`)
			base = strings.Replace(base, `devices = "cpu"`, `devices = [0]`, 1)
			base = strings.Replace(base, "prompts = 16", "prompts = 8", 1)
			path, res := writeStudy(t, base, `base = "base.toml"
cycles = 2
gap_s = 0.1
thermal_tolerance_c = 1
thermal_max_wait_s = 2
[[points]]
"workload.batch_size" = 1
`)
			r := lemctl(t, env, "sweep", path, "--plugin-dir", pluginDir, "--plugin-dir", nvmlDir, "--results-dir", res, "--progress", "quiet")
			if code := r.wait(t, 5*time.Minute); code != 0 {
				t.Fatalf("sweep exited %d\nstderr:\n%s", code, r.stderr.String())
			}
			ids := studyIDs(t, res)
			if len(ids) != 1 {
				t.Fatalf("studies = %v", ids)
			}
			a, m := loadStudy(t, res, ids[0])
			if len(m.ThermalReferenceC) != 1 {
				t.Fatalf("thermal reference = %v, want the one GPU", m.ThermalReferenceC)
			}
			var dom string
			for id, v := range m.ThermalReferenceC {
				dom = id
				if v < 40 || (tc.slope == 0 && v != 40) {
					t.Errorf("reference %s = %g °C, want 40 (steady) or more (rising)", id, v)
				}
			}
			if len(m.Runs) != 2 || m.Runs[0].ThermalWait != nil || m.Runs[1].ThermalWait == nil {
				t.Fatalf("runs = %+v, want a thermal wait recorded before the second only", m.Runs)
			}
			w := m.Runs[1].ThermalWait
			if len(w.Domains) != 1 || w.Domains[0].Domain != dom || w.Domains[0].ReachedC == nil {
				t.Fatalf("wait = %+v", w)
			}
			reached := *w.Domains[0].ReachedC
			var timeouts int
			for _, p := range a.Points {
				for _, fd := range p.Findings {
					if fd.Code == study.CodeThermalWaitTimeout {
						timeouts++
					}
				}
			}
			stderr := r.stderr.String()
			if !tc.timeout {
				if w.TimedOut || reached != 40 || timeouts != 0 || strings.Contains(stderr, "thermal wait gave up") {
					t.Errorf("steady temperature: wait %+v (reached %g), %d timeout findings\nstderr:\n%s", w, reached, timeouts, stderr)
				}
				return
			}
			want := fmt.Sprintf("%s at %.1f °C (reference %.1f °C)", dom, reached, m.ThermalReferenceC[dom])
			if !w.TimedOut || !strings.Contains(w.Warning, want) || !strings.Contains(stderr, "thermal wait gave up") || !strings.Contains(stderr, dom) || timeouts != 1 {
				t.Errorf("rising temperature: wait %+v, want a timeout naming %q; %d timeout findings\nstderr:\n%s", w, want, timeouts, stderr)
			}
		})
	}
}
