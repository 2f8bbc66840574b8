package nvml

import (
	"fmt"
	"strconv"

	nv "github.com/NVIDIA/go-nvml/pkg/nvml"
)

var archNames = map[nv.DeviceArchitecture]string{
	nv.DEVICE_ARCH_KEPLER:    "kepler",
	nv.DEVICE_ARCH_MAXWELL:   "maxwell",
	nv.DEVICE_ARCH_PASCAL:    "pascal",
	nv.DEVICE_ARCH_VOLTA:     "volta",
	nv.DEVICE_ARCH_TURING:    "turing",
	nv.DEVICE_ARCH_AMPERE:    "ampere",
	nv.DEVICE_ARCH_ADA:       "ada",
	nv.DEVICE_ARCH_HOPPER:    "hopper",
	nv.DEVICE_ARCH_BLACKWELL: "blackwell",
	nv.DEVICE_ARCH_RUBIN:     "rubin",
}

var computeModes = map[nv.ComputeMode]string{
	nv.COMPUTEMODE_DEFAULT:           "default",
	nv.COMPUTEMODE_EXCLUSIVE_THREAD:  "exclusive_thread",
	nv.COMPUTEMODE_PROHIBITED:        "prohibited",
	nv.COMPUTEMODE_EXCLUSIVE_PROCESS: "exclusive_process",
}

func enabled(s nv.EnableState) string {
	if s == nv.FEATURE_ENABLED {
		return "enabled"
	}
	return "disabled"
}

func watts(mw uint32) string { return strconv.FormatFloat(float64(mw)/1000, 'f', -1, 64) }

// deviceFacts reads one GPU's identity, limits and modes. A fact the device cannot report is
// recorded as "unavailable (<NVML code>)", never left out silently.
func deviceFacts(g *gpu) map[string]string {
	d := g.dev
	f := map[string]string{
		"index":             strconv.Itoa(g.index),
		"uuid":              g.uuid,
		"name":              g.name,
		"energy_method":     g.method,
		"energy_confidence": g.confidence,
	}
	switch {
	case g.hasCounter:
		f["energy_source"] = "nvmlDeviceGetTotalEnergyConsumption"
	case g.hasInstant:
		f["energy_source"] = "NVML_FI_DEV_POWER_INSTANT (186), integrated"
	case g.hasAvgFld:
		f["energy_source"] = "NVML_FI_DEV_POWER_AVERAGE (185, ~1 s moving average), integrated"
	case g.hasUsage:
		f["energy_source"] = "nvmlDeviceGetPowerUsage (~1 s moving average), integrated"
	}
	switch {
	case g.hasInstant:
		f["power_field"] = "instant (186)"
	case g.hasAvgFld:
		f["power_field"] = "average (185)"
	case g.hasUsage:
		f["power_field"] = "nvmlDeviceGetPowerUsage"
	}
	if !g.available() {
		f["energy_unavailable"] = g.reason
	}
	na := func(key string, ret nv.Return) { f[key] = "unavailable (" + retName(ret) + ")" }
	if pci, ret := d.GetPciInfo(); ret == nv.SUCCESS {
		f["pci_bus_id"] = cString(pci.BusId[:])
		f["pci_device_id"] = fmt.Sprintf("0x%08x", pci.PciDeviceId)
	} else {
		na("pci_bus_id", ret)
	}
	if a, ret := d.GetArchitecture(); ret == nv.SUCCESS {
		name, ok := archNames[a]
		if !ok {
			name = fmt.Sprintf("unknown (%d)", uint32(a))
		}
		f["architecture"] = name
	} else {
		na("architecture", ret)
	}
	if maj, mnr, ret := d.GetCudaComputeCapability(); ret == nv.SUCCESS {
		f["compute_capability"] = fmt.Sprintf("%d.%d", maj, mnr)
	} else {
		na("compute_capability", ret)
	}
	if v, ret := d.GetEnforcedPowerLimit(); ret == nv.SUCCESS {
		f["power_limit_enforced_w"] = watts(v)
	} else {
		na("power_limit_enforced_w", ret)
	}
	if v, ret := d.GetPowerManagementDefaultLimit(); ret == nv.SUCCESS {
		f["power_limit_default_w"] = watts(v)
	} else {
		na("power_limit_default_w", ret)
	}
	if lo, hi, ret := d.GetPowerManagementLimitConstraints(); ret == nv.SUCCESS {
		f["power_limit_min_w"], f["power_limit_max_w"] = watts(lo), watts(hi)
	}
	if v, ret := d.GetPersistenceMode(); ret == nv.SUCCESS {
		f["persistence_mode"] = enabled(v)
	} else {
		na("persistence_mode", ret)
	}
	if cur, pend, ret := d.GetEccMode(); ret == nv.SUCCESS {
		f["ecc_mode"], f["ecc_mode_pending"] = enabled(cur), enabled(pend)
	} else {
		na("ecc_mode", ret)
	}
	if cur, pend, ret := d.GetMigMode(); ret == nv.SUCCESS {
		f["mig_mode"], f["mig_mode_pending"] = enabled(nv.EnableState(cur)), enabled(nv.EnableState(pend))
	} else {
		na("mig_mode", ret)
	}
	if v, ret := d.GetComputeMode(); ret == nv.SUCCESS {
		name, ok := computeModes[v]
		if !ok {
			name = fmt.Sprintf("unknown (%d)", int(v))
		}
		f["compute_mode"] = name
	} else {
		na("compute_mode", ret)
	}
	if mem, ret := d.GetMemoryInfo(); ret == nv.SUCCESS {
		f["memory_total_bytes"] = strconv.FormatUint(mem.Total, 10)
	}
	return f
}

// cString converts a NUL-terminated C char array.
func cString(b []int8) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}
