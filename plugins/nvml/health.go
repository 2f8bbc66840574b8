package nvml

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/lemctl/lemctl/sdk"
)

// Health codes this package adds to the sampler's counter_reset and counter_stuck.
const (
	CodeMismatch    = "counter_integration_mismatch"
	CodeThrottled   = "throttled"
	CodeTempDrift   = "temperature_drift"
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

// Thresholds are the limits of the health checks.
type Thresholds struct {
	// Mismatch is the relative difference between the counter and integrated instant power
	// above which counter_integration_mismatch is raised (0.10 = 10 %), beyond the edge terms.
	Mismatch float64
	// TemperatureDriftC is the temperature range over the session above which
	// temperature_drift is raised.
	TemperatureDriftC float64
}

// health computes the findings of one domain from its timeline and the source's observations.
func health(de *sdk.DomainEnergy, e *entry, src *source, th Thresholds) []sdk.Finding {
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
	// temperature_drift: the range of the temperature over the session.
	lo, hi := math.Inf(1), math.Inf(-1)
	var loNS, hiNS int64
	for _, s := range de.Samples {
		if math.IsNaN(s.TemperatureC) {
			continue
		}
		if s.TemperatureC < lo {
			lo, loNS = s.TemperatureC, s.MonoNS
		}
		if s.TemperatureC > hi {
			hi, hiNS = s.TemperatureC, s.MonoNS
		}
	}
	if hi-lo > th.TemperatureDriftC {
		add(CodeTempDrift, sdk.SeverityWarning,
			fmt.Sprintf("GPU %d temperature ranged over %.0f °C during the session (%.0f → %.0f °C; limit %.0f °C)", e.g.index, hi-lo, lo, hi, th.TemperatureDriftC),
			"warm the GPU up before measuring (a longer warmup), so that leakage power is steady", max(loNS, hiNS))
	}
	if de.Domain.Method == sdk.MethodCounter && !hasCode(de.Health, "counter_reset") && !hasCode(de.Health, "counter_stuck") {
		if f := mismatch(de, th.Mismatch); f != nil {
			out = append(out, *f)
		}
	}
	return out
}

func hasCode(fs []sdk.Finding, code string) bool {
	for _, f := range fs {
		if f.Code == code {
			return true
		}
	}
	return false
}

// mismatch compares the counter with the integral of the instant power over the same span, the
// independent check of docs/methodology.md. The span runs from the first to the last sample at which
// the counter changed; the counter's true update instants lie up to one sample gap before those
// samples, so each edge may differ by (gap + one update period) × peak power, which is added to
// the relative tolerance. Sessions with fewer than five counter updates or without instant power
// are not checked.
func mismatch(de *sdk.DomainEnergy, threshold float64) *sdk.Finding {
	s := de.Samples
	first, last := -1, -1
	for i := 1; i < len(s); i++ {
		if s[i].Energy != s[i-1].Energy {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 || de.CounterUpdates < 5 || last-first < 2 {
		return nil
	}
	var integral float64 // J
	peak := 0.0
	points := 0
	for i := first + 1; i <= last; i++ {
		a, b := s[i-1], s[i]
		if math.IsNaN(a.PowerW) || math.IsNaN(b.PowerW) {
			return nil // instant power missing: no independent check
		}
		integral += (a.PowerW + b.PowerW) / 2 * float64(b.MonoNS-a.MonoNS) / 1e9
		peak = max(peak, a.PowerW, b.PowerW)
		points++
	}
	if points == 0 || integral <= 0 {
		return nil
	}
	counterJ := float64(s[last].Energy-s[first].Energy) / 1e6
	gapA := time.Duration(s[first].MonoNS - s[first-1].MonoNS)
	gapB := time.Duration(s[last].MonoNS - s[last-1].MonoNS)
	edge := (gapA + gapB + 2*de.Domain.UpdatePeriod).Seconds() * peak
	diff := math.Abs(counterJ - integral)
	if diff <= threshold*integral+edge {
		return nil
	}
	return &sdk.Finding{Code: CodeMismatch, Severity: sdk.SeverityWarning, Domain: de.Domain.ID, MonoNS: s[last].MonoNS,
		Message: fmt.Sprintf("energy counter gives %.3f J but integrated instant power gives %.3f J over the same %.2f s (%+.1f %%; tolerance %.0f %% + %.3f J edge term)",
			counterJ, integral, float64(s[last].MonoNS-s[first].MonoNS)/1e9, (counterJ-integral)/integral*100, threshold*100, edge),
		Advice: "one of the GPU's two energy sources is wrong: check the driver version and compare with an external meter; the counter is reported"}
}
