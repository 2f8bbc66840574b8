package nvml_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/lemctl/lemctl/plugins/nvml"
	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/plugintest"
)

// The meter's logic (discovery, device selection, method, environment, init failures,
// configuration, sessions, foreign processes) runs here on fakeDriver, eight H200s of plain
// values; the real go-nvml path is driven by the simulated library (fake_test.go, live_test.go).

type env map[string]string

func (e env) lookup(k string) (string, bool) { v, ok := e[k]; return v, ok }

// fakeMeter returns a meter on f with the given environment.
func fakeMeter(f *fakeDriver, e env) *nvml.Meter {
	if e == nil {
		e = env{}
	}
	return nvml.NewMeter(nvml.Options{Open: func(string) nvml.Driver { return f }, LookupEnv: e.lookup,
		Proc: fstest.MapFS{}, ParentPID: 4242})
}

func ids(doms []sdk.Domain) []string {
	out := make([]string, len(doms))
	for i, d := range doms {
		out[i] = d.ID
	}
	return out
}

func TestDiscovery(t *testing.T) {
	s := fakeDGX(func(int) gpuCaps { return fullCaps })
	doms, err := fakeMeter(s, nil).Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(doms) != 8 {
		t.Fatalf("%d domains, want the DGX H200's 8", len(doms))
	}
	seen := map[string]bool{}
	for i, d := range doms {
		want := "nvml:" + s.uuid(i)
		if d.ID != want || d.Device == nil {
			t.Fatalf("domain %d: id %q device %+v, want %q with a device", i, d.ID, d.Device, want)
		}
		// The generic device contract (docs/protocol.md, "Devices"): vendor, model, index and
		// exactly the environment that isolates this GPU.
		dev := d.Device
		env := dev.VisibilityEnv
		if dev.ID != s.uuid(i) || dev.Vendor != "nvidia" || dev.Model != "NVIDIA H200 141GB HBM3e" || dev.Index != i ||
			len(env) != 2 || env["CUDA_VISIBLE_DEVICES"] != s.uuid(i) || env["CUDA_DEVICE_ORDER"] != "PCI_BUS_ID" {
			t.Errorf("domain %d: device %+v, want nvidia %s at index %d isolated by CUDA_VISIBLE_DEVICES=<uuid>, CUDA_DEVICE_ORDER=PCI_BUS_ID", i, dev, s.uuid(i), i)
		}
		if d.Kind != sdk.DomainGPU || d.Scope != sdk.ScopeDevice || !d.Available {
			t.Errorf("domain %d: kind %s scope %s available %v", i, d.Kind, d.Scope, d.Available)
		}
		if d.MaxPower.Watts() != 700 || d.UpdatePeriod != nvml.CounterUpdatePeriod || !strings.Contains(d.Name, "H200") {
			t.Errorf("domain %d: max power %v, update period %v, name %q", i, d.MaxPower, d.UpdatePeriod, d.Name)
		}
		if seen[d.ID] {
			t.Errorf("repeated id %s", d.ID)
		}
		seen[d.ID] = true
	}
}

func TestDeviceSelection(t *testing.T) {
	s := fakeDGX(func(int) gpuCaps { return fullCaps })
	u := func(i int) string { return s.uuid(i) }
	id := func(i int) string { return "nvml:" + u(i) }
	cases := []struct {
		name    string
		env     env
		devices []any
		want    []string
		reason  string // when the single domain is unavailable
	}{
		{name: "no CUDA_VISIBLE_DEVICES: all", want: []string{id(0), id(1), id(2), id(3), id(4), id(5), id(6), id(7)}},
		{name: "indices in CUDA order", env: env{"CUDA_VISIBLE_DEVICES": "3,1"}, want: []string{id(3), id(1)}},
		{name: "a UUID", env: env{"CUDA_VISIBLE_DEVICES": u(5)}, want: []string{id(5)}},
		{name: "a UUID prefix", env: env{"CUDA_VISIBLE_DEVICES": u(6)[:20]}, want: []string{id(6)}},
		{name: "mixed with spaces", env: env{"CUDA_VISIBLE_DEVICES": "2, " + u(4)}, want: []string{id(2), id(4)}},
		{name: "an invalid entry stops the list", env: env{"CUDA_VISIBLE_DEVICES": "1,x,2"}, want: []string{id(1)}},
		{name: "an out-of-range index stops the list", env: env{"CUDA_VISIBLE_DEVICES": "0,8,2"}, want: []string{id(0)}},
		{name: "a repeat stops the list", env: env{"CUDA_VISIBLE_DEVICES": "0,0,2"}, want: []string{id(0)}},
		{name: "empty hides all", env: env{"CUDA_VISIBLE_DEVICES": ""}, want: []string{"nvml"}, reason: "hides every GPU"},
		{name: "-1 hides all", env: env{"CUDA_VISIBLE_DEVICES": "-1"}, want: []string{"nvml"}, reason: "stops the list"},
		{name: "explicit devices beat CUDA_VISIBLE_DEVICES", env: env{"CUDA_VISIBLE_DEVICES": "0"}, devices: []any{"7", u(2)}, want: []string{id(7), id(2)}},
		{name: "an explicit device that is missing", devices: []any{"1", "GPU-nope"}, want: []string{id(1), "nvml:GPU-nope"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := fakeMeter(s, tc.env)
			if tc.devices != nil {
				cfg, errs := sdk.ValidateConfig(nvml.Schema(), map[string]any{"devices": tc.devices})
				if len(errs) > 0 {
					t.Fatal(errs)
				}
				if errs, err := m.Configure(context.Background(), cfg); err != nil || len(errs) > 0 {
					t.Fatal(errs, err)
				}
			}
			doms, err := m.Inventory(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			got := ids(doms)
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("domains %v, want %v", got, tc.want)
			}
			if tc.reason != "" && (doms[0].Available || !strings.Contains(doms[0].Reason, tc.reason)) {
				t.Errorf("domain %+v, want unavailable with reason %q", doms[0], tc.reason)
			}
			for _, d := range doms {
				if d.ID == "nvml:GPU-nope" && (d.Available || !strings.Contains(d.Reason, "no GPU has UUID")) {
					t.Errorf("missing device domain %+v", d)
				}
			}
		})
	}
}

func TestMethod(t *testing.T) {
	cases := []struct {
		name       string
		caps       gpuCaps
		method     string
		confidence string
		available  bool
	}{
		{"counter", fullCaps, sdk.MethodCounter, sdk.ConfidenceMeasured, true},
		{"no counter: instant power", gpuCaps{instant: true, average: true, usage: true, watts: 250}, sdk.MethodPowerIntegration, sdk.ConfidenceMeasured, true},
		{"no counter, no fields: power usage", gpuCaps{usage: true, watts: 150}, sdk.MethodPowerIntegration, sdk.ConfidenceAveraged, true},
		{"no counter: average field only", gpuCaps{average: true, watts: 150}, sdk.MethodPowerIntegration, sdk.ConfidenceAveraged, true},
		{"nothing readable", gpuCaps{}, sdk.MethodCounter, sdk.ConfidenceMeasured, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := fakeDGX(func(i int) gpuCaps {
				if i == 0 {
					return tc.caps
				}
				return fullCaps
			})
			m := fakeMeter(s, env{"CUDA_VISIBLE_DEVICES": "0"})
			doms, err := m.Inventory(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			d := doms[0]
			if d.Method != tc.method || d.Confidence != tc.confidence || d.Available != tc.available {
				t.Fatalf("domain %s/%s available=%v, want %s/%s %v (%s)", d.Method, d.Confidence, d.Available, tc.method, tc.confidence, tc.available, d.Reason)
			}
			if !tc.available {
				if !strings.Contains(d.Reason, "no readable energy") {
					t.Errorf("reason %q", d.Reason)
				}
				return
			}
			// A short session integrates or counts the constant power.
			sess, err := m.Start(context.Background(), sdk.StartRequest{Interval: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(400 * time.Millisecond)
			meas, err := m.Stop(context.Background(), sess.ID)
			if err != nil {
				t.Fatal(err)
			}
			de := meas.Domains[0]
			dur := float64(de.Samples[len(de.Samples)-1].MonoNS-de.Samples[0].MonoNS) / 1e9
			want := tc.caps.watts * dur
			// The mock counter has 1 mJ steps and is read on the real clock: allow 3 %.
			if got := de.Energy.Joules(); got < want*0.97 || got > want*1.03 {
				t.Errorf("energy %.3f J, want %.3f J (%.0f W × %.3f s)", got, want, tc.caps.watts, dur)
			}
			if tc.confidence == sdk.ConfidenceAveraged && de.Samples[1].AveragePowerW != tc.caps.watts {
				t.Errorf("average power %v, want %v", de.Samples[1].AveragePowerW, tc.caps.watts)
			}
		})
	}
}

func TestEnvironmentFields(t *testing.T) {
	s := fakeDGX(func(int) gpuCaps { return fullCaps })
	m := fakeMeter(s, env{"CUDA_VISIBLE_DEVICES": "1"})
	e, err := m.Environment(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The host records them as "nvml.<fact>": the plugin's own keys carry no prefix.
	for k, want := range map[string]string{"driver_version": "550.54.15", "cuda_driver_version": "12.4",
		"cuda_visible_devices": "1", "device_selection": "CUDA_VISIBLE_DEVICES", "gpus_seen": "8"} {
		if e.Facts[k] != want {
			t.Errorf("host fact %s = %q, want %q", k, e.Facts[k], want)
		}
	}
	for k := range e.Facts {
		if strings.HasPrefix(k, "nvml.") {
			t.Errorf("host fact %q carries the plugin's name, which the host adds (it would read nvml.%s)", k, k)
		}
	}
	if len(e.Devices) != 1 || e.Devices[0].ID != "nvml:"+s.uuid(1) {
		t.Fatalf("devices %+v", e.Devices)
	}
	f := e.Devices[0].Facts
	want := map[string]string{
		"name": "NVIDIA H200 141GB HBM3e", "uuid": s.uuid(1), "pci_bus_id": "0000:01:00.0", "architecture": "hopper",
		"compute_capability": "9.0", "driver_version": "550.54.15", "cuda_driver_version": "12.4",
		"power_limit_enforced_w": "700", "power_limit_default_w": "700", "power_limit_max_w": "700",
		"persistence_mode": "enabled", "ecc_mode": "enabled", "mig_mode": "disabled", "compute_mode": "exclusive_process",
		"energy_method": "counter", "energy_confidence": "measured", "power_field": "instant (186)",
	}
	for k, w := range want {
		if f[k] != w {
			t.Errorf("fact %s = %q, want %q", k, f[k], w)
		}
	}
}

// failingLib is an NVML whose Init fails with code; any other call panics, which proves that
// nothing else is called after a failed Init.
func failingLib(code string, calls *atomic.Int32) nvml.Driver {
	f := fakeDGX(func(int) gpuCaps { return fullCaps })
	f.initErr, f.inits = &nvml.Error{Call: "nvmlInit", Code: code}, calls
	return f
}

func TestInitFailure(t *testing.T) {
	cases := []struct {
		name      string
		code      string
		exists    []string // library candidates that exist on the fake file system
		wantTries int
		reason    string
	}{
		{"no library anywhere", nvml.CodeLibraryNotFound, nil, 1, "NVML library not found"},
		{"no library, two driver folders tried", nvml.CodeLibraryNotFound,
			[]string{"/usr/local/nvidia/lib64/libnvidia-ml.so.1", "/usr/lib64/libnvidia-ml.so.1"}, 3, "/usr/lib64/libnvidia-ml.so.1: exists but could not be loaded"},
		{"driver not loaded stops the search", nvml.CodeDriverNotLoaded,
			[]string{"/usr/local/nvidia/lib64/libnvidia-ml.so.1"}, 1, "ERROR_DRIVER_NOT_LOADED (the NVIDIA kernel driver is not loaded)"},
		{"version mismatch", nvml.CodeRMVersionMismatch, nil, 1, "different versions"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			var tried []string
			fsys := fstest.MapFS{}
			for _, p := range tc.exists {
				fsys[strings.TrimPrefix(p, "/")] = &fstest.MapFile{Data: []byte("ELF")}
			}
			m := nvml.NewMeter(nvml.Options{
				Open:      func(p string) nvml.Driver { tried = append(tried, p); return failingLib(tc.code, &calls) },
				LookupEnv: env{}.lookup, Proc: fstest.MapFS{},
				Stat: func(p string) (fs.FileInfo, error) { return fsys.Stat(strings.TrimPrefix(p, "/")) },
			})
			for range 2 { // a second use makes no second attempt
				doms, err := m.Inventory(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if len(doms) != 1 || doms[0].ID != "nvml" || doms[0].Available || !strings.Contains(doms[0].Reason, tc.reason) {
					t.Fatalf("domains %+v, want one unavailable domain whose reason mentions %q", doms, tc.reason)
				}
			}
			if int(calls.Load()) != tc.wantTries || len(tried) != tc.wantTries {
				t.Errorf("Init called %d times on %v, want %d", calls.Load(), tried, tc.wantTries)
			}
			e, err := m.Environment(context.Background())
			if err != nil || !strings.Contains(e.Facts["problem"], tc.reason) || len(e.Devices) != 0 {
				t.Errorf("environment %+v, %v", e, err)
			}
			// A session on an unavailable meter still works and carries the reason.
			sess, err := m.Start(context.Background(), sdk.StartRequest{})
			if err != nil {
				t.Fatal(err)
			}
			meas, err := m.Stop(context.Background(), sess.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(meas.Domains) != 1 || meas.Domains[0].Domain.Available || !strings.Contains(meas.Domains[0].Domain.Reason, tc.reason) {
				t.Errorf("measurement domains %+v", meas.Domains)
			}
		})
	}
}

func TestConfigure(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		cfg  map[string]any
		key  string // the key that must be rejected; "" for a valid table
	}{
		{"defaults", map[string]any{}, ""},
		{"all keys", map[string]any{"interval": "10ms", "devices": []any{"0", "GPU-abc"}, "allowed_pids": []any{1234.0}}, ""},
		{"the host's validity.temperature_drift_c is no meter key", map[string]any{"temperature_drift_c": 15.0}, "temperature_drift_c"},
		{"relative library path", map[string]any{"library_path": "lib/libnvidia-ml.so.1"}, "library_path"},
		{"missing library", map[string]any{"library_path": "/nonexistent/libnvidia-ml.so.1"}, "library_path"},
		{"library path is a directory", map[string]any{"library_path": dir}, "library_path"},
		{"interval below 10ms", map[string]any{"interval": "5ms"}, "interval"},
		{"interval not a duration", map[string]any{"interval": "fast"}, "interval"},
		{"a MIG device", map[string]any{"devices": []any{"MIG-1234"}}, "devices"},
		{"a device that is no id", map[string]any{"devices": []any{"first"}}, "devices"},
		{"a bad pid", map[string]any{"allowed_pids": []any{-3.0}}, "allowed_pids"},
		{"unknown key", map[string]any{"intervall": "1s"}, "intervall"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := fakeMeter(fakeDGX(func(int) gpuCaps { return fullCaps }), nil)
			cfg, errs := sdk.ValidateConfig(nvml.Schema(), tc.cfg)
			if len(errs) == 0 {
				var err error
				errs, err = m.Configure(context.Background(), cfg)
				if err != nil {
					t.Fatal(err)
				}
			}
			switch {
			case tc.key == "" && len(errs) > 0:
				t.Fatalf("valid table rejected: %v", errs)
			case tc.key != "" && (len(errs) == 0 || errs[0].Key != tc.key):
				t.Fatalf("errors %v, want one on %q", errs, tc.key)
			}
		})
	}
}

// TestLibraryFixedOnceLoaded: the library cannot change after NVML was loaded.
func TestLibraryFixedOnceLoaded(t *testing.T) {
	m := fakeMeter(fakeDGX(func(int) gpuCaps { return fullCaps }), nil)
	if _, err := m.Inventory(context.Background()); err != nil {
		t.Fatal(err)
	}
	set := m.Settings()
	set.LibraryPath = "/other/libnvidia-ml.so.1"
	if err := m.SetSettings(set); err == nil {
		t.Fatal("changing the library after load was accepted")
	}
}

func TestConformance(t *testing.T) {
	m := fakeMeter(fakeDGX(func(int) gpuCaps { return fullCaps }), env{"CUDA_VISIBLE_DEVICES": "0,1"})
	plugintest.Run(t, nvml.PluginFor(m), plugintest.Options{
		Config: map[string]any{"interval": "20ms"},
		BadConfigs: []plugintest.BadConfig{
			{Table: map[string]any{"interval": "1ms"}, Key: "interval"},
			{Table: map[string]any{"devices": []any{"MIG-x"}}, Key: "devices"},
		},
		Energy: plugintest.EnergyOptions{RequireAvailable: true},
	})
}

// TestForeignProcesses runs sessions on the mock with processes from testdata/proc: the plugin's
// parent is pid 100 (lemctl), 200 and 250 descend from it, 300 is another job.
func TestForeignProcesses(t *testing.T) {
	cases := []struct {
		name     string
		pids     []uint32
		env      env
		allowed  []any
		severity string // of the foreign_gpu_process finding; "" for none
	}{
		{"own tree", []uint32{100, 200, 250}, nil, nil, ""},
		{"another job", []uint32{200, 300}, nil, nil, sdk.SeverityError},
		{"another job, allowed", []uint32{300}, nil, []any{300.0}, ""},
		{"another job in the run", []uint32{300}, env{nvml.EnvRunPID: "300"}, nil, ""},
		{"a pid from another namespace", []uint32{999}, nil, nil, sdk.SeverityWarning},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := fakeDGX(func(int) gpuCaps { return fullCaps })
			for _, p := range tc.pids {
				s.gpus[0].procs = append(s.gpus[0].procs, nvml.Process{PID: p, UsedGPUMemory: 1 << 30})
			}
			e := env{"CUDA_VISIBLE_DEVICES": "0"}
			for k, v := range tc.env {
				e[k] = v
			}
			m := nvml.NewMeter(nvml.Options{Open: func(string) nvml.Driver { return s }, LookupEnv: e.lookup,
				Proc: os.DirFS("testdata/proc"), ParentPID: 100})
			if tc.allowed != nil {
				cfg, _ := sdk.ValidateConfig(nvml.Schema(), map[string]any{"allowed_pids": tc.allowed})
				if errs, err := m.Configure(context.Background(), cfg); err != nil || len(errs) > 0 {
					t.Fatal(errs, err)
				}
			}
			sess, err := m.Start(context.Background(), sdk.StartRequest{Interval: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			meas, err := m.Stop(context.Background(), sess.ID)
			if err != nil {
				t.Fatal(err)
			}
			var got []sdk.Finding
			for _, f := range meas.Domains[0].Health {
				if f.Code == nvml.CodeForeign {
					got = append(got, f)
				}
			}
			switch {
			case tc.severity == "" && len(got) > 0:
				t.Fatalf("unexpected findings %+v", got)
			case tc.severity != "" && (len(got) != 1 || got[0].Severity != tc.severity):
				t.Fatalf("findings %+v, want one %s", got, tc.severity)
			}
		})
	}
}

// TestStartRequestPolicy: the sdk's session policy on the meter — the same request gets the
// same answer from nvml, rapl and the example meter.
func TestStartRequestPolicy(t *testing.T) {
	s := fakeDGX(func(i int) gpuCaps {
		if i == 1 {
			return gpuCaps{} // nothing readable: an unavailable domain
		}
		return fullCaps
	})
	id := func(i int) string { return "nvml:" + s.uuid(i) }
	m := fakeMeter(s, env{"CUDA_VISIBLE_DEVICES": "2,1,0"})
	ctx := context.Background()
	cases := []struct {
		name     string
		req      sdk.StartRequest
		want     []string
		interval time.Duration
		finding  string
		errHas   string
	}{
		{name: "empty list: the available GPUs measured, the unavailable one listed", req: sdk.StartRequest{},
			want: []string{id(2), id(1), id(0)}, interval: nvml.DefaultInterval},
		{name: "a subset in inventory order, each once", req: sdk.StartRequest{Domains: []string{id(0), id(2), id(0)}, Interval: 20 * time.Millisecond},
			want: []string{id(2), id(0)}, interval: 20 * time.Millisecond},
		{name: "too short is raised", req: sdk.StartRequest{Interval: time.Millisecond, Domains: []string{id(0)}},
			want: []string{id(0)}, interval: nvml.MinInterval, finding: "interval_raised"},
		{name: "too long is shortened", req: sdk.StartRequest{Interval: time.Hour, Domains: []string{id(0)}},
			want: []string{id(0)}, interval: nvml.MaxInterval, finding: "interval_shortened"},
		{name: "negative interval", req: sdk.StartRequest{Interval: -time.Millisecond}, errHas: "invalid argument"},
		{name: "unknown domain", req: sdk.StartRequest{Domains: []string{"nvml:GPU-nope"}},
			errHas: `domain "nvml:GPU-nope": invalid argument: not a domain of this meter (valid: ` + id(2) + ", " + id(1) + " (unavailable), " + id(0) + ")"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sess, err := m.Start(ctx, tc.req)
			if tc.errHas != "" {
				if !errors.Is(err, sdk.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("Start: %v, want ErrInvalidArgument with %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			meas, err := m.Stop(ctx, sess.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(sess.Domains); strings.Join(got, ",") != strings.Join(tc.want, ",") || sess.Interval != tc.interval {
				t.Errorf("session %v at %v, want %v at %v", got, sess.Interval, tc.want, tc.interval)
			}
			var codes []string
			for _, f := range meas.Findings {
				if strings.HasPrefix(f.Code, "interval_") {
					codes = append(codes, f.Code)
				}
			}
			if strings.Join(codes, ",") != tc.finding {
				t.Errorf("interval findings %v, want %q", codes, tc.finding)
			}
			for _, d := range meas.Domains {
				if d.Domain.ID == id(1) && (d.Domain.Available || !strings.Contains(d.Domain.Reason, "no readable energy")) {
					t.Errorf("unreadable GPU in the measurement: %+v", d.Domain)
				}
			}
		})
	}
}

// TestUnreportedFacts: a fact the GPU cannot report is recorded with NVML's code, never dropped.
func TestUnreportedFacts(t *testing.T) {
	s := fakeDGX(func(int) gpuCaps { return fullCaps })
	s.gpus[0].facts.Unreported = map[string]error{
		"ecc_mode":     notSupported("nvmlDeviceGetEccMode"),
		"architecture": &nvml.Error{Call: "nvmlDeviceGetArchitecture", Code: "ERROR_UNKNOWN"},
	}
	e, err := fakeMeter(s, env{"CUDA_VISIBLE_DEVICES": "0"}).Environment(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f := e.Devices[0].Facts
	if f["ecc_mode"] != "unavailable (ERROR_NOT_SUPPORTED)" || f["architecture"] != "unavailable (ERROR_UNKNOWN)" || f["compute_mode"] != "exclusive_process" {
		t.Errorf("facts %v", f)
	}
	if _, ok := f["ecc_mode_pending"]; ok {
		t.Errorf("ecc_mode_pending reported though ECC mode could not be read: %v", f)
	}
}
