package nvml

import (
	"fmt"
	"strings"

	"github.com/lemctl/lemctl/sdk"
)

// Health codes this package adds to the sampler's counter_reset and counter_stuck.
const (
	CodeThrottled   = "throttled"
	CodeForeign     = "foreign_gpu_process"
	CodePersistence = "persistence_mode_off"
)

// throttleReasons are the clock-event reasons that mean thermal or power-cap throttling (nvml.h
// nvmlClocksEventReason*), with their names.
var throttleReasons = []struct {
	bit  uint64
	name string
}{
	{0x4, "sw_power_cap"},
	{0x8, "hw_slowdown"},
	{0x20, "sw_thermal_slowdown"},
	{0x40, "hw_thermal_slowdown"},
	{0x80, "hw_power_brake_slowdown"},
}

// health computes the findings of one domain from its timeline and the source's observations.
func health(de *sdk.DomainEnergy, e *entry, src *source) []sdk.Finding {
	var out []sdk.Finding
	id := de.Domain.ID
	add := func(code, sev, msg, advice string, ns int64) {
		out = append(out, sdk.Finding{Code: code, Severity: sev, Message: msg, Advice: advice, Domain: id, MonoNS: ns})
	}
	if e.persistenceOff {
		add(CodePersistence, sdk.SeverityWarning, fmt.Sprintf("GPU %d (%s) has persistence mode off", e.g.index, e.g.uuid),
			"enable it (nvidia-smi -pm 1, or run nvidia-persistenced) so the driver stays loaded between runs: with it off, the driver reinitialises the GPU when the last client exits, which costs time and can reset its state", 0)
	}
	for _, p := range src.foreignOf(e) {
		kind := "compute"
		if p.graphics {
			kind = "graphics"
		}
		who := fmt.Sprintf("pid %d", p.pid)
		if p.name != "" {
			who += " (" + p.name + ")"
		}
		if p.visible {
			add(CodeForeign, sdk.SeverityError,
				fmt.Sprintf("%s process %s, outside this run's process tree, used GPU %d (%s)", kind, who, e.g.index, e.g.uuid),
				"measure on an otherwise idle GPU: the energy of this domain includes the other process's work; list a process that belongs to the run in allowed_pids", p.firstSeen)
		} else {
			add(CodeForeign, sdk.SeverityWarning,
				fmt.Sprintf("%s process %s used GPU %d (%s) and is not visible in this PID namespace, so it may or may not belong to this run", kind, who, e.g.index, e.g.uuid),
				"in a container NVML reports host pids; check with nvidia-smi on the host that the GPU was otherwise idle", p.firstSeen)
		}
	}
	if !de.Domain.Available || len(de.Samples) == 0 {
		return out
	}
	// throttled: thermal or power-cap clock events at any slow read of the session.
	var seen uint64
	var firstNS int64
	for _, s := range de.Samples {
		for _, r := range throttleReasons {
			if s.ClockEventReasons&r.bit != 0 {
				if seen == 0 {
					firstNS = s.MonoNS
				}
				seen |= r.bit
			}
		}
	}
	if seen != 0 {
		var names []string
		for _, r := range throttleReasons {
			if seen&r.bit != 0 {
				names = append(names, r.name)
			}
		}
		add(CodeThrottled, sdk.SeverityWarning,
			fmt.Sprintf("GPU %d clocks were limited during the session (%s)", e.g.index, strings.Join(names, ", ")),
			"improve cooling or lower the load; throttled runs are not comparable with unthrottled ones", firstNS)
	}
	return out
}
