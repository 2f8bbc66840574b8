package e2e

import (
	"maps"
	"strings"
	"testing"
	"time"
)

// acmeMeter scripts the example meter as a two-device accelerator: acme0 and acme1, vendor
// "acme", each made the only visible device by ACME_VISIBLE_DEVICES=<id>.
const acmeMeter = `
[energy]
meters = ["example-meter"]

[energy.example-meter]
domains = ["acme0:gpu:device:100", "acme1:gpu:device:200"]
vendor = "acme"
visibility_env = "ACME_VISIBLE_DEVICES"
update_period = "10ms"
interval = "20ms"
`

// TestRunTwoWorkersOnTwoVendorNeutralDevices runs one worker per device of a meter the host knows
// nothing about: each worker gets exactly the environment the meter gave for its device, and
// proves it from inside — the worker records the variable as its own process sees it, and the
// meter it starts (its child) lists only that device and reports the value it inherited. The
// parent's own ACME_VISIBLE_DEVICES names both devices: the launcher must replace it.
func TestRunTwoWorkersOnTwoVendorNeutralDevices(t *testing.T) {
	cfg := strings.Replace(experiment("acme", 1, acmeMeter), `devices = "cpu"`, `devices = ["acme0", "acme1"]`, 1)
	r, res := runExperiment(t, cfg, []string{"ACME_VISIBLE_DEVICES=acme0,acme1"})
	if r.code != 0 {
		t.Fatalf("run exited %d\nstderr:\n%s", r.code, r.stderr.String())
	}
	exp := experimentID(t, res)
	ids := []string{"acme0", "acme1"}
	for rank, id := range ids {
		raw := readRaw(t, res, exp, rank)
		d := raw.Device
		if d.Kind != "device" || d.Vendor != "acme" || d.UUID != id || d.Meter != "example-meter" || d.Index != rank {
			t.Errorf("rank %d ran on %+v, want acme device %s (index %d) of example-meter", rank, d, id, rank)
		}
		want := map[string]string{"ACME_VISIBLE_DEVICES": id}
		if !maps.Equal(d.Env, want) || !maps.Equal(d.SeenEnv, want) {
			t.Errorf("rank %d: device env %v, seen by the worker %v; want exactly %v", rank, d.Env, d.SeenEnv, want)
		}
		if got := raw.Environment.Facts["example-meter.visible_devices"]; got != id {
			t.Errorf("rank %d: the worker's meter saw ACME_VISIBLE_DEVICES=%q, want %q", rank, got, id)
		}
		var devices []string
		for _, dom := range raw.Energy.Domains {
			if dom.Scope == "device" {
				devices = append(devices, dom.ID)
				if dom.DeviceUUID != id || dom.DeviceVendor != "acme" || dom.TotalJ == nil || *dom.TotalJ <= 0 {
					t.Errorf("rank %d: domain %s: device %q vendor %q energy %v, want acme %s measured", rank, dom.ID, dom.DeviceUUID, dom.DeviceVendor, deref(dom.TotalJ), id)
				}
			}
		}
		if len(devices) != 1 || devices[0] != id {
			t.Errorf("rank %d measured devices %v, want only %s", rank, devices, id)
		}
		if len(raw.Warnings) != 0 {
			t.Errorf("rank %d warnings: %+v", rank, raw.Warnings)
		}
	}
	agg := readAggregated(t, res, exp)
	if len(agg.Ranks) != 2 || agg.Partial {
		t.Errorf("aggregate ranks %v partial %v, want 2 complete ranks", agg.Ranks, agg.Partial)
	}
	show := lemctl(t, nil, "results", "show", exp, "--raw", "--plugin-dir", pluginDir, "--results-dir", res)
	if code := show.wait(t, time.Minute); code != 0 || !strings.Contains(show.stdout.String(), "seeing ACME_VISIBLE_DEVICES=acme1") {
		t.Errorf("results show --raw exited %d, want rank 1's device shown with what it saw:\n%s%s", code, show.stdout.String(), show.stderr.String())
	}
}

// TestRunRefusesDevicesItCannotResolveOrIsolate: a device id no meter reports, and a device
// whose meter gives no visibility environment, are configuration errors (exit 2) naming
// launch.devices, before any worker starts.
func TestRunRefusesDevicesItCannotResolveOrIsolate(t *testing.T) {
	for _, tc := range []struct {
		name, devices, meter string
		want                 []string
	}{
		{"unknown id", `["acme7"]`, acmeMeter, []string{`launch.devices: "acme7" is not a device`, `example-meter: 0 = "acme0", 1 = "acme1"`}},
		{"index out of range", `[2]`, acmeMeter, []string{"launch.devices: index 2 matches no device"}},
		{"no visibility env", `["acme0"]`, strings.Replace(acmeMeter, `visibility_env = "ACME_VISIBLE_DEVICES"`, `visibility_env = ""`, 1),
			[]string{`launch.devices: device "acme0" (example-meter) cannot be isolated`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := strings.Replace(experiment("refused", 1, tc.meter), `devices = "cpu"`, "devices = "+tc.devices, 1)
			r, _ := runExperiment(t, cfg, nil)
			if r.code != 2 {
				t.Fatalf("run exited %d, want 2\nstderr:\n%s", r.code, r.stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr.String())
				}
			}
		})
	}
}
