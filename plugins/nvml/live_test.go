package nvml_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lemctl/lemctl/plugins/nvml"
	"github.com/lemctl/lemctl/sdk"
)

// A three-plateau trace: idle, full load, partial load.
const plateaus = `
seg 0 1.2 100
seg 0 1.2 400
seg 0 1.2 250
`

func findDomain(t *testing.T, meas *sdk.Measurement, id string) *sdk.DomainEnergy {
	t.Helper()
	for i := range meas.Domains {
		if meas.Domains[i].Domain.ID == id {
			return &meas.Domains[i]
		}
	}
	t.Fatalf("no domain %q in %+v", id, meas.Domains)
	return nil
}

const gpu0 = "nvml:GPU-fa4e0000-0000-4000-8000-000000000000"

// TestLiveAccuracy checks the energy of a session against the simulated library's truth: the
// counter within 0.5 % plus one update period × power at each edge; integrated instant power at
// 100 ms within 2 % plus the same edge term.
func TestLiveAccuracy(t *testing.T) {
	cases := []struct {
		name       string
		script     string
		method     string
		confidence string
		rel        float64
		interval   time.Duration
	}{
		{"counter", plateaus, sdk.MethodCounter, sdk.ConfidenceMeasured, 0.005, 100 * time.Millisecond},
		// At 10 ms a read may see ~100 ms of energy at once: that must not look like a reset.
		{"counter at 10ms", plateaus, sdk.MethodCounter, sdk.ConfidenceMeasured, 0.005, 10 * time.Millisecond},
		{"instant power integration", plateaus + "dev 0 counter 0\n", sdk.MethodPowerIntegration, sdk.ConfidenceMeasured, 0.02, 100 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := startLive(t, tc.script, nil)
			meas := l.measure(tc.interval, 3500*time.Millisecond)
			de := findDomain(t, meas, gpu0)
			if !de.Domain.Available {
				t.Fatalf("domain unavailable: %s", de.Domain.Reason)
			}
			if de.Domain.Method != tc.method || de.Domain.Confidence != tc.confidence {
				t.Fatalf("method %s/%s, want %s/%s", de.Domain.Method, de.Domain.Confidence, tc.method, tc.confidence)
			}
			tr := parseTrace(t, tc.script, 0)
			t0 := l.t0()
			a, b := de.Samples[0].MonoNS, de.Samples[len(de.Samples)-1].MonoNS
			truth := tr.truth(t0, a, b)
			got := de.Energy.Joules()
			period := nvml.CounterUpdatePeriod.Seconds()
			edge := period*tr.power(float64(a-t0)/1e9) + period*tr.power(float64(b-t0)/1e9)
			tol := tc.rel*truth + edge
			t.Logf("energy %.3f J, truth %.3f J over %.3f s (diff %+.3f J, tolerance %.3f J); %d samples, %d counter updates",
				got, truth, float64(b-a)/1e9, got-truth, tol, len(de.Samples), de.CounterUpdates)
			if math.Abs(got-truth) > tol {
				t.Errorf("energy %.3f J differs from truth %.3f J by more than %.3f J", got, truth, tol)
			}
			if want := int(3 * time.Second / tc.interval); len(de.Samples) < want {
				t.Errorf("only %d samples in 3.5 s at %s, want ≥ %d", len(de.Samples), tc.interval, want)
			}
			for _, f := range meas.Findings {
				if f.Severity == sdk.SeverityError {
					t.Errorf("unexpected error finding on a clean trace: %+v", f)
				}
			}
		})
	}
}

// TestLiveHealth plays one scripted trace per health code and checks that each raises it.
func TestLiveHealth(t *testing.T) {
	const steady = "seg 0 0.5 150\nseg 0 10 300\n"
	cases := []struct {
		name   string
		script string
		code   string // the finding that must be raised ("" for none of the codes below)
		check  func(t *testing.T, de *sdk.DomainEnergy)
	}{
		{name: "pre-Volta GPU without a counter falls back to averaged power",
			script: steady + "dev 0 arch 4\ndev 0 counter 0\ndev 0 instant 0\ndev 0 average 0\n",
			check: func(t *testing.T, de *sdk.DomainEnergy) {
				if de.Domain.Method != sdk.MethodPowerIntegration || de.Domain.Confidence != sdk.ConfidenceAveraged {
					t.Errorf("method %s/%s, want power_integration/averaged", de.Domain.Method, de.Domain.Confidence)
				}
				if !math.IsNaN(de.Samples[1].PowerW) || math.IsNaN(de.Samples[1].AveragePowerW) {
					t.Errorf("an averaged-power domain must have no instant power and an average: %+v", de.Samples[1])
				}
				if de.Energy == 0 {
					t.Errorf("no energy integrated")
				}
			}},
		{name: "counter_reset", script: steady + "dev 0 reset_at 1.5\n", code: "counter_reset"},
		{name: "counter_stuck", script: steady + "dev 0 stuck 0.8 100\n", code: "counter_stuck"},
		{name: "throttled", script: steady + "dev 0 throttle 1.0 1.6 0x40\n", code: nvml.CodeThrottled},
		{name: "foreign_gpu_process", script: steady + "dev 0 process 1\n", code: nvml.CodeForeign},
		{name: "persistence_mode_off", script: steady + "dev 0 persistence 0\n", code: nvml.CodePersistence},
		{name: "own process is not foreign", script: steady + "dev 0 process parent\ndev 0 process self\n",
			check: func(t *testing.T, de *sdk.DomainEnergy) {
				for _, f := range de.Health {
					if f.Code == nvml.CodeForeign {
						t.Errorf("the test process (the plugin's parent) was reported foreign: %+v", f)
					}
				}
			}},
	}
	// counter_integration_mismatch and temperature_drift are judged by the host over the window
	// (host/energy, [validity]), never by the meter.
	all := []string{"counter_reset", "counter_stuck", "counter_integration_mismatch", nvml.CodeThrottled, "temperature_drift", nvml.CodeForeign, nvml.CodePersistence}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := startLive(t, tc.script, nil)
			meas := l.measure(100*time.Millisecond, 3*time.Second)
			de := findDomain(t, meas, gpu0)
			if !de.Domain.Available {
				t.Fatalf("domain unavailable: %s", de.Domain.Reason)
			}
			var codes []string
			for _, f := range de.Health {
				codes = append(codes, f.Code)
				if !slices.ContainsFunc(meas.Findings, func(g sdk.Finding) bool { return g.Code == f.Code && g.Domain == f.Domain }) {
					t.Errorf("domain finding %s is missing from the measurement's findings", f.Code)
				}
			}
			t.Logf("findings: %v", de.Health)
			for _, c := range all {
				want := c == tc.code
				if got := slices.Contains(codes, c); got != want {
					t.Errorf("finding %s raised=%v, want %v (findings %v)", c, got, want, codes)
				}
			}
			if tc.check != nil {
				tc.check(t, de)
			}
		})
	}
}

// TestLiveUnavailable covers the cases where there is nothing to measure: each reports one
// unavailable domain with the reason, and the plugin survives.
func TestLiveUnavailable(t *testing.T) {
	notALib := filepath.Join(t.TempDir(), "libnvidia-ml.so.1")
	if err := os.WriteFile(notALib, []byte("not an ELF file"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, script string
		cfg          map[string]any
		reason       string
		onlyInit     bool // the library may see nothing but nvmlInit_v2
	}{
		{name: "nvmlInit fails", script: "init_error 9\nlog_calls 1\n", reason: "ERROR_DRIVER_NOT_LOADED", onlyInit: true},
		{name: "no GPU", script: "gpus 0\n", reason: "sees no GPU"},
		{name: "not a library", cfg: map[string]any{"library_path": notALib}, reason: "could not be loaded"},
		{name: "unknown device", script: plateaus, cfg: map[string]any{"devices": []any{"GPU-does-not-exist"}}, reason: "no GPU has UUID"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := startLive(t, tc.script, tc.cfg)
			ctx := context.Background()
			doms, err := l.c.Meter().Inventory(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(doms) != 1 || doms[0].Available || !strings.Contains(doms[0].Reason, tc.reason) {
				t.Fatalf("inventory %+v, want one unavailable domain whose reason mentions %q", doms, tc.reason)
			}
			if _, err := l.c.Meter().Environment(ctx); err != nil {
				t.Fatal(err)
			}
			meas := l.measure(0, 300*time.Millisecond)
			if len(meas.Domains) != 1 || meas.Domains[0].Domain.Available || !strings.Contains(meas.Domains[0].Domain.Reason, tc.reason) {
				t.Fatalf("measurement %+v, want the domain unavailable with the reason", meas.Domains)
			}
			if tc.onlyInit {
				for _, line := range l.logLines() {
					if strings.HasPrefix(line, "call ") && line != "call nvmlInit_v2" {
						t.Errorf("NVML call after a failed nvmlInit: %s", line)
					}
				}
			}
			// The plugin is still alive and answering.
			if _, err := l.c.Meter().Inventory(ctx); err != nil {
				t.Fatalf("plugin died: %v", err)
			}
		})
	}
}

// TestLiveNoDriver runs the plugin with the default library search: on a machine without the
// NVIDIA driver (this one) the domain is unavailable with the reason, and nothing crashes.
func TestLiveNoDriver(t *testing.T) {
	for _, dir := range append([]string{"/usr/lib"}, nvml.DriverFolders...) {
		if _, err := os.Stat(filepath.Join(dir, nvml.DefaultLibraryName)); err == nil {
			t.Skipf("this machine has an NVML library in %s", dir)
		}
	}
	l := startLive(t, "", map[string]any{"library_path": ""})
	doms, err := l.c.Meter().Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(doms) != 1 || doms[0].Available || !strings.Contains(doms[0].Reason, "NVML library not found") {
		t.Fatalf("inventory %+v, want one unavailable domain: NVML library not found", doms)
	}
	t.Logf("reason: %s", doms[0].Reason)
}

// TestLiveDevices checks CUDA_VISIBLE_DEVICES and two GPUs on the real binary.
func TestLiveDevices(t *testing.T) {
	script := "gpus 2\n" + plateaus + "seg 1 5 200\n"
	uuid1 := "GPU-fa4e0000-0000-4000-8000-000000000001"
	cases := []struct {
		name string
		env  []string
		want []string
	}{
		{"all", nil, []string{gpu0, "nvml:" + uuid1}},
		{"by UUID", []string{"CUDA_VISIBLE_DEVICES=" + uuid1}, []string{"nvml:" + uuid1}},
		{"by index", []string{"CUDA_VISIBLE_DEVICES=1,0"}, []string{"nvml:" + uuid1, gpu0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := startLive(t, script, nil, tc.env...)
			meas := l.measure(50*time.Millisecond, 1200*time.Millisecond)
			var got []string
			for _, d := range meas.Domains {
				got = append(got, d.Domain.ID)
				if !d.Domain.Available || d.Energy == 0 {
					t.Errorf("domain %s: available=%v energy=%v (%s)", d.Domain.ID, d.Domain.Available, d.Energy, d.Domain.Reason)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("domains %v, want %v", got, tc.want)
			}
			env, err := l.c.Meter().Environment(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(env.Devices) != len(tc.want) {
				t.Fatalf("environment has %d devices, want %d", len(env.Devices), len(tc.want))
			}
			f := env.Devices[0].Facts
			for k, want := range map[string]string{"architecture": "hopper", "driver_version": "999.99.99-fake", "cuda_driver_version": "12.4",
				"persistence_mode": "enabled", "power_limit_enforced_w": "700", "compute_mode": "default", "mig_mode": "disabled", "ecc_mode": "enabled"} {
				if f[k] != want {
					t.Errorf("fact %s = %q, want %q", k, f[k], want)
				}
			}
			if !strings.HasPrefix(f["pci_bus_id"], "00000000:1") {
				t.Errorf("pci_bus_id %q", f["pci_bus_id"])
			}
		})
	}
}
