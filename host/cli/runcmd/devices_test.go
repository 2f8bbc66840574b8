package runcmd

import (
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/sdk"
)

func acme(id string, index int) meterDevice {
	return meterDevice{meter: "example-meter", info: sdk.DeviceInfo{ID: id, Vendor: "acme", Index: index,
		VisibilityEnv: map[string]string{"ACME_VISIBLE_DEVICES": id}}}
}

func nvidia(uuid string, index int) meterDevice {
	return meterDevice{meter: "nvml", info: sdk.DeviceInfo{ID: uuid, Vendor: "nvidia", Index: index,
		VisibilityEnv: map[string]string{"CUDA_VISIBLE_DEVICES": uuid, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}}}
}

func TestResolveDevices(t *testing.T) {
	two := []meterDevice{acme("acme0", 0), acme("acme1", 1)}
	mixed := []meterDevice{acme("acme0", 0), acme("acme1", 1), nvidia("GPU-a", 0)}
	bare := []meterDevice{{meter: "old-meter", info: sdk.DeviceInfo{ID: "GPU-old", Vendor: "nvidia", Index: 0}},
		{meter: "old-meter", info: sdk.DeviceInfo{ID: "GPU-older", Index: 1, VisibilityEnv: map[string]string{"CUDA_VISIBLE_DEVICES": "GPU-older"}}}}
	for _, tc := range []struct {
		name    string
		entries []string
		inv     []meterDevice
		want    []string // meter/id of each resolved device
		err     []string // substrings of the usage error
	}{
		{name: "ids", entries: []string{"acme1", "acme0"}, inv: two, want: []string{"example-meter/acme1", "example-meter/acme0"}},
		{name: "indices", entries: []string{"0", "1"}, inv: two, want: []string{"example-meter/acme0", "example-meter/acme1"}},
		{name: "ids of two plugins", entries: []string{"GPU-a", "acme1"}, inv: mixed, want: []string{"nvml/GPU-a", "example-meter/acme1"}},
		{name: "an index only one plugin has", entries: []string{"1"}, inv: mixed, want: []string{"example-meter/acme1"}},
		{name: "one device seen by two plugins with the same environment", entries: []string{"acme0"},
			inv: []meterDevice{acme("acme0", 0), {meter: "other", info: acme("acme0", 3).info}}, want: []string{"example-meter/acme0"}},
		{name: "unknown id", entries: []string{"acme7"}, inv: mixed,
			err: []string{"launch.devices", `"acme7" is not a device`, `example-meter: 0 = "acme0", 1 = "acme1"`, `nvml: 0 = "GPU-a"`}},
		{name: "unknown index", entries: []string{"5"}, inv: two, err: []string{"launch.devices: index 5 matches no device", `1 = "acme1"`}},
		{name: "ambiguous index", entries: []string{"0"}, inv: mixed,
			err: []string{"launch.devices: index 0 is ambiguous", `"acme0" (example-meter) and "GPU-a" (nvml)`}},
		{name: "ambiguous id", entries: []string{"acme0"},
			inv: []meterDevice{acme("acme0", 0), {meter: "other", info: sdk.DeviceInfo{ID: "acme0", VisibilityEnv: map[string]string{"X": "1"}}}},
			err: []string{`launch.devices: "acme0" is ambiguous`}},
		{name: "the same device twice", entries: []string{"0", "acme0"}, inv: two,
			err: []string{`launch.devices: index 0 and "acme0" name the same device "acme0" (example-meter)`}},
		{name: "no visibility environment", entries: []string{"GPU-old"}, inv: bare,
			err: []string{`launch.devices: device "GPU-old" (old-meter) cannot be isolated`, "no visibility environment"}},
		{name: "no vendor", entries: []string{"GPU-older"}, inv: bare, err: []string{`launch.devices: device "GPU-older" (old-meter) reports no vendor`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveDevices(tc.entries, tc.inv)
			if len(tc.err) > 0 {
				if err == nil {
					t.Fatalf("resolved %v, want an error", got)
				}
				if code := cliutil.CodeOf(err); code != cliutil.ExitUsage {
					t.Errorf("exit code %d, want %d", code, cliutil.ExitUsage)
				}
				for _, s := range tc.err {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q lacks %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, d := range got {
				ids = append(ids, d.meter+"/"+d.info.ID)
			}
			if strings.Join(ids, ",") != strings.Join(tc.want, ",") {
				t.Errorf("resolved %v, want %v", ids, tc.want)
			}
		})
	}
}
