package nvml

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/units"
)

// CounterUpdatePeriod is the nominal update period of NVML's energy counter and instant power
// (docs/methodology.md: 10–100 ms; 100 ms is the conservative figure used for edge uncertainty).
const CounterUpdatePeriod = 100 * time.Millisecond

// AveragingWindow is the window of nvmlDeviceGetPowerUsage's moving average on Ampere and newer.
const AveragingWindow = time.Second

// powerSource says how a GPU's power is read.
type powerSource int

const (
	powerNone    powerSource = iota
	powerFields              // nvmlDeviceGetFieldValues: instant (186) and/or average (185)
	powerAverage             // nvmlDeviceGetPowerUsage: a ~1 s moving average
)

// gpu is one physical GPU as discovered, with how its energy can be read.
type gpu struct {
	index int
	drv   Driver // reads this GPU by index
	uuid  string
	name  string

	hasCounter bool
	hasInstant bool // field 186
	hasAvgFld  bool // field 185
	hasUsage   bool // nvmlDeviceGetPowerUsage
	power      powerSource

	method     string
	confidence string
	reason     string // why unavailable; "" when available
	maxPower   units.Power
}

func (g *gpu) id() string { return "nvml:" + g.uuid }

func (g *gpu) available() bool { return g.reason == "" }

// domain describes g as an sdk.Domain.
func (g *gpu) domain() sdk.Domain {
	d := sdk.Domain{ID: g.id(), Name: fmt.Sprintf("GPU %d: %s", g.index, g.name), Kind: sdk.DomainGPU, Scope: sdk.ScopeDevice,
		Method: g.method, Confidence: g.confidence, Available: g.available(), Reason: g.reason,
		UpdatePeriod: CounterUpdatePeriod, MaxPower: g.maxPower, Device: g.device()}
	switch {
	case g.method == sdk.MethodCounter:
		d.Resolution = units.Millijoule
	case g.confidence == sdk.ConfidenceAveraged:
		d.UpdatePeriod = AveragingWindow
	}
	return d
}

// device describes g for the launcher: a worker sees only g through CUDA_VISIBLE_DEVICES set to
// its UUID, with CUDA_DEVICE_ORDER=PCI_BUS_ID so that CUDA and NVML agree on the order.
func (g *gpu) device() *sdk.DeviceInfo {
	return &sdk.DeviceInfo{ID: g.uuid, Vendor: "nvidia", Model: g.name, Index: g.index,
		VisibilityEnv: map[string]string{"CUDA_VISIBLE_DEVICES": g.uuid, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}}
}

// discover enumerates the GPUs NVML sees and probes how each one's energy can be read.
func discover(drv Driver) ([]*gpu, error) {
	n, err := drv.DeviceCount()
	if err != nil {
		return nil, err
	}
	out := make([]*gpu, 0, n)
	for i := 0; i < n; i++ {
		d, err := drv.Device(i)
		if err != nil {
			return nil, err
		}
		g := &gpu{index: i, drv: drv, uuid: d.UUID, name: d.Name}
		if g.name == "" {
			g.name = "unknown NVIDIA GPU"
		}
		probe(g, d)
		out = append(out, g)
	}
	return out, nil
}

// probe finds how g's energy is read: the counter first, then the instant power field, then the
// averaged power reading, and the device's maximum power for the counter's reset check.
func probe(g *gpu, d Device) {
	g.hasCounter = d.Counter == nil
	g.hasInstant = d.InstantField == nil
	g.hasAvgFld = d.AverageField == nil
	g.hasUsage = d.PowerUsage == nil
	switch {
	case g.hasInstant || g.hasAvgFld:
		g.power = powerFields
	case g.hasUsage:
		g.power = powerAverage
	}
	switch {
	case g.hasCounter:
		g.method, g.confidence = sdk.MethodCounter, sdk.ConfidenceMeasured
	case g.hasInstant:
		g.method, g.confidence = sdk.MethodPowerIntegration, sdk.ConfidenceMeasured
	case g.hasAvgFld || g.hasUsage:
		g.method, g.confidence = sdk.MethodPowerIntegration, sdk.ConfidenceAveraged
	default:
		g.method, g.confidence = sdk.MethodCounter, sdk.ConfidenceMeasured
		g.reason = fmt.Sprintf("GPU %d (%s) has no readable energy: energy counter %s, instant power field %s, power usage %s",
			g.index, g.uuid, codeOf(d.Counter), codeOf(d.InstantField), codeOf(d.PowerUsage))
	}
	g.maxPower = d.MaxPower
}

// selection is the outcome of choosing the session's GPUs.
type selection struct {
	gpus []*gpu
	// missing are explicit entries that matched no GPU, each an unavailable domain.
	missing []missingDevice
	// source says what chose the set: "devices", "CUDA_VISIBLE_DEVICES" or "all".
	source string
	// note explains a CUDA_VISIBLE_DEVICES entry that stopped parsing, or an empty selection.
	note string
}

type missingDevice struct {
	entry, reason string
}

// selectGPUs applies the explicit devices setting, else CUDA_VISIBLE_DEVICES (when set), else
// keeps every GPU.
//
// Explicit entries are NVML indices ("0") or GPU UUIDs ("GPU-…", a unique prefix is enough); an
// entry that matches nothing becomes an unavailable domain. CUDA_VISIBLE_DEVICES is read the way
// the CUDA runtime reads it: comma-separated indices or UUID prefixes, parsing stops at the first
// entry that is invalid or matches no GPU, and a list that selects nothing (empty, "-1",
// "NoDevFiles") hides every GPU.
func selectGPUs(all []*gpu, explicit []string, cvd string, cvdSet bool) selection {
	if len(explicit) > 0 {
		sel := selection{source: "devices"}
		for _, e := range explicit {
			g, why := match(all, strings.TrimSpace(e))
			if g == nil {
				sel.missing = append(sel.missing, missingDevice{entry: e, reason: why})
				continue
			}
			if !containsGPU(sel.gpus, g) {
				sel.gpus = append(sel.gpus, g)
			}
		}
		return sel
	}
	if !cvdSet {
		return selection{gpus: all, source: "all"}
	}
	sel := selection{source: "CUDA_VISIBLE_DEVICES"}
	for _, e := range strings.Split(cvd, ",") {
		e = strings.TrimSpace(e)
		g, why := match(all, e)
		if g == nil {
			if e != "" {
				sel.note = fmt.Sprintf("CUDA_VISIBLE_DEVICES=%q: entry %q stops the list (%s); the CUDA runtime ignores it and every entry after it", cvd, e, why)
			}
			break
		}
		if containsGPU(sel.gpus, g) {
			// CUDA treats a repeated device as invalid and stops there too.
			sel.note = fmt.Sprintf("CUDA_VISIBLE_DEVICES=%q: entry %q repeats a device and stops the list", cvd, e)
			break
		}
		sel.gpus = append(sel.gpus, g)
	}
	if len(sel.gpus) == 0 && sel.note == "" {
		sel.note = fmt.Sprintf("CUDA_VISIBLE_DEVICES=%q hides every GPU", cvd)
	}
	return sel
}

// match finds the GPU an entry names: an index or a GPU UUID (prefix).
func match(all []*gpu, e string) (*gpu, string) {
	switch {
	case e == "":
		return nil, "empty entry"
	case strings.HasPrefix(e, "MIG-"):
		return nil, "MIG devices are not measured: NVML's energy is per physical GPU, name the GPU instead"
	case strings.HasPrefix(e, "GPU-"):
		var found *gpu
		for _, g := range all {
			if strings.HasPrefix(g.uuid, e) {
				if found != nil {
					return nil, fmt.Sprintf("%q is a prefix of more than one GPU UUID", e)
				}
				found = g
			}
		}
		if found == nil {
			return nil, fmt.Sprintf("no GPU has UUID %s (have %s)", e, uuids(all))
		}
		return found, ""
	}
	i, err := strconv.Atoi(e)
	if err != nil || i < 0 {
		return nil, fmt.Sprintf("%q is neither a GPU index nor a GPU UUID", e)
	}
	for _, g := range all {
		if g.index == i {
			return g, ""
		}
	}
	return nil, fmt.Sprintf("no GPU has index %d (NVML sees %d)", i, len(all))
}

func uuids(all []*gpu) string {
	if len(all) == 0 {
		return "none"
	}
	s := make([]string, len(all))
	for i, g := range all {
		s[i] = g.uuid
	}
	return strings.Join(s, ", ")
}

func containsGPU(gs []*gpu, g *gpu) bool {
	for _, x := range gs {
		if x == g {
			return true
		}
	}
	return false
}

// validEntry reports whether a devices entry is well-formed (whether it matches a GPU is only
// known once NVML is loaded).
func validEntry(e string) string {
	switch {
	case strings.HasPrefix(e, "MIG-"):
		return "MIG devices are not measured: NVML's energy is per physical GPU; name the GPU"
	case strings.HasPrefix(e, "GPU-") && len(e) > len("GPU-"):
		return ""
	}
	if i, err := strconv.Atoi(e); err == nil && i >= 0 {
		return ""
	}
	return fmt.Sprintf("%q is neither a GPU index nor a GPU UUID", e)
}
