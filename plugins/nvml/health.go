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
	// throttled: thermal or power-cap clock events at any slow read of the session (the host
	// computes the share of the measured window, docs/methodology.md).
	var seen uint64
	var firstNS int64
	for _, s := range de.Samples {
		if bits := s.ClockEventReasons & sdk.ClockEventThrottling; s.ReasonsRead && bits != 0 {
			if seen == 0 {
				firstNS = s.MonoNS
			}
			seen |= bits
		}
	}
	if seen != 0 {
		add(CodeThrottled, sdk.SeverityWarning,
			fmt.Sprintf("GPU %d clocks were limited during the session (%s)", e.g.index, strings.Join(sdk.ClockEventNames(seen), ", ")),
			"improve cooling or lower the load; throttled runs are not comparable with unthrottled ones", firstNS)
	}
	return out
}
