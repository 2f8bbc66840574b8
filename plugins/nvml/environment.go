package nvml

import (
	"fmt"
	"strconv"
)

func enabled(on bool) string {
	if on {
		return "enabled"
	}
	return "disabled"
}

func watts(w float64) string { return strconv.FormatFloat(w, 'f', -1, 64) }

// deviceFacts reads one GPU's identity, limits and modes. A fact the device cannot report is
// recorded as "unavailable (<NVML code>)", never left out silently.
func deviceFacts(g *gpu) map[string]string {
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
	d := g.drv.Facts(g.index)
	// set records a fact, or why the device could not report it.
	set := func(key string, value func()) {
		if err, ok := d.Unreported[key]; ok {
			f[key] = "unavailable (" + codeOf(err) + ")"
			return
		}
		value()
	}
	set("pci_bus_id", func() {
		f["pci_bus_id"] = d.PCIBusID
		f["pci_device_id"] = fmt.Sprintf("0x%08x", d.PCIDeviceID)
	})
	set("architecture", func() { f["architecture"] = d.Architecture })
	set("compute_capability", func() { f["compute_capability"] = d.ComputeCapability })
	set("power_limit_enforced_w", func() { f["power_limit_enforced_w"] = watts(d.PowerLimitEnforcedW) })
	set("power_limit_default_w", func() { f["power_limit_default_w"] = watts(d.PowerLimitDefaultW) })
	if d.PowerLimitMaxW > 0 {
		f["power_limit_min_w"], f["power_limit_max_w"] = watts(d.PowerLimitMinW), watts(d.PowerLimitMaxW)
	}
	set("persistence_mode", func() { f["persistence_mode"] = enabled(d.Persistence) })
	set("ecc_mode", func() { f["ecc_mode"], f["ecc_mode_pending"] = enabled(d.ECC), enabled(d.ECCPending) })
	set("mig_mode", func() { f["mig_mode"], f["mig_mode_pending"] = enabled(d.MIG), enabled(d.MIGPending) })
	set("compute_mode", func() { f["compute_mode"] = d.ComputeMode })
	if d.MemoryTotalBytes > 0 {
		f["memory_total_bytes"] = strconv.FormatUint(d.MemoryTotalBytes, 10)
	}
	return f
}
