package hostclient

import (
	"testing"

	energyv1 "github.com/lemctl/lemctl/sdk/proto/lem/energy/v1"
)

// TestDomainDevice: a domain's Device crosses the wire whole; a meter that only sets the
// deprecated device_uuid still names its device, without a visibility environment (so the host
// can name it but not isolate it); a host-level domain has no device.
func TestDomainDevice(t *testing.T) {
	full := domainFromProto(&energyv1.Domain{Id: "nvml:GPU-a", DeviceUuid: "GPU-a", DeviceIndex: 2, Device: &energyv1.Device{
		Id: "GPU-a", Vendor: "nvidia", Model: "H200", Index: 2, VisibilityEnv: map[string]string{"CUDA_VISIBLE_DEVICES": "GPU-a"}}})
	if d := full.Device; d == nil || d.ID != "GPU-a" || d.Vendor != "nvidia" || d.Model != "H200" || d.Index != 2 || d.VisibilityEnv["CUDA_VISIBLE_DEVICES"] != "GPU-a" {
		t.Errorf("device %+v", full.Device)
	}
	legacy := domainFromProto(&energyv1.Domain{Id: "old:GPU-b", DeviceUuid: "GPU-b", DeviceIndex: 1})
	if d := legacy.Device; d == nil || d.ID != "GPU-b" || d.Index != 1 || d.Vendor != "" || len(d.VisibilityEnv) != 0 {
		t.Errorf("legacy device %+v, want GPU-b at index 1 without a visibility environment", legacy.Device)
	}
	if host := domainFromProto(&energyv1.Domain{Id: "package-0", DeviceIndex: -1}); host.Device != nil {
		t.Errorf("host-level domain has device %+v", host.Device)
	}
}
