package rapl

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/counter"
	"github.com/lemctl/lemctl/sdk/units"
)

// PowercapDir is where the zones live, relative to the sysfs root.
const PowercapDir = "class/powercap"

// primaryControlType is the MSR interface; zones of other RAPL control types (intel-rapl-mmio)
// that carry the same name are duplicates of its zones and are dropped.
const primaryControlType = "intel-rapl"

// maxPlausiblePower bounds a constraint value we believe: firmware sometimes reports an
// unconstrained limit as a huge number, which would make the poll interval absurdly short.
const maxPlausiblePower = 10 * units.Kilowatt

// DefaultAssumedMaxPower is the maximum power assumed for a zone that states none in its
// constraint files: above any single CPU package or DRAM channel set sold today.
const DefaultAssumedMaxPower = 500 * units.Watt

// UpdatePeriod is how often the hardware updates a RAPL counter (about 1 ms; Intel SDM vol. 3B
// 14.10.1). The sysfs value has 1 µJ granularity.
const UpdatePeriod = time.Millisecond

// PermissionFix says how to let a non-root process read energy_uj. It ends every reason given
// for a permission error.
const PermissionFix = "energy_uj is readable only by root since CVE-2020-8694; grant access: run as root, " +
	"or give the plugin the capability (`sudo setcap cap_dac_read_search+ep lem-plugin-rapl`), " +
	"or make the counters readable (`sudo chmod a+r /sys/class/powercap/*/energy_uj` until reboot, or the udev rule " +
	"`SUBSYSTEM==\"powercap\", ACTION==\"add\", RUN+=\"/bin/chmod a+r /sys%p/energy_uj\"` in /etc/udev/rules.d/99-rapl.rules, " +
	"or chgrp to a group you are in and chmod g+r); see docs/rapl.md"

// zoneDirRE matches a zone directory name: a control type, then one or more indices.
var zoneDirRE = regexp.MustCompile(`^([a-z][a-z0-9-]*)((?::[0-9]+)+)$`)

var (
	packageNameRE = regexp.MustCompile(`^package-([0-9]+)(?:-die-([0-9]+))?$`)
	constraintRE  = regexp.MustCompile(`^constraint_([0-9]+)_(name|power_limit_uw|max_power_uw|time_window_us)$`)
)

// Constraint is one of a zone's power constraints (constraint_N_* files).
type Constraint struct {
	Index      int
	Name       string      // "long_term", "short_term", "peak_power"
	PowerLimit units.Power // 0 when absent
	MaxPower   units.Power // 0 when absent
	TimeWindow time.Duration
}

// Zone is one RAPL zone found under class/powercap.
type Zone struct {
	// Dir is the zone's directory name under class/powercap, e.g. "intel-rapl:0:2".
	Dir         string
	ControlType string // "intel-rapl", "intel-rapl-mmio"
	Path        []int  // the indices after the control type: [0 2]
	// Name is the content of the zone's name file: "package-0", "dram", "core", "uncore", "psys".
	Name string
	// Label is unique among the host's zones: the name, prefixed by the parent's for a subzone
	// ("package-0/dram").
	Label string
	Kind  string // an sdk.Domain* constant
	Scope string // an sdk.Scope* constant

	// MaxRange is max_energy_range_uj, the value at which energy_uj wraps; 0 when unknown.
	MaxRange    units.Energy
	Constraints []Constraint
	// MaxPower bounds the zone's power: the highest plausible constraint value, or the assumed
	// maximum when MaxPowerAssumed.
	MaxPower        units.Power
	MaxPowerAssumed bool

	// Enabled is the zone's enabled file ("1"/"0": whether power limiting is on; the counter
	// counts either way), "" when absent.
	Enabled string

	Available bool
	Reason    string // why not available
	// Notes are non-fatal problems worth a warning (no max range).
	Notes []string
	// Ignored lists constraint values ignored as implausible (firmware's "unlimited").
	Ignored []string
}

// ID is the zone's domain id, stable per host.
func (z Zone) ID() string { return "rapl:" + z.Dir }

// File returns the path of one of the zone's files inside the sysfs fs.FS.
func (z Zone) File(name string) string { return path.Join(PowercapDir, z.Dir, name) }

// PollBound is the longest poll interval that reads the counter at least twice per wrap period
// at the zone's max power; 0 when the zone has no known range.
func (z Zone) PollBound() time.Duration { return counter.PollBound(z.MaxRange, z.MaxPower) }

// Domain describes the zone as an sdk.Domain.
func (z Zone) Domain() sdk.Domain {
	return sdk.Domain{ID: z.ID(), Name: z.Label, Kind: z.Kind, Scope: z.Scope, Method: sdk.MethodCounter,
		Confidence: sdk.ConfidenceMeasured, Available: z.Available, Reason: z.Reason,
		Resolution: units.Microjoule, UpdatePeriod: UpdatePeriod, MaxPower: z.MaxPower}
}

// Skipped is a zone directory that could not be understood.
type Skipped struct {
	Dir    string
	Reason string
}

// Scan is what ScanZones found.
type Scan struct {
	// Zones are the usable zones (available or not), mmio duplicates removed, in a stable order.
	Zones []Zone
	// Skipped are malformed zone directories.
	Skipped []Skipped
	// Duplicates are the directories dropped as duplicates of a primary zone.
	Duplicates []string
	// Problem, when no zone was found, says why and how to fix it.
	Problem string
}

// ScanZones reads the zones under class/powercap of fsys. root is the sysfs root fsys stands
// for, used only in messages. assumedMax is the max power assumed for a zone without
// constraints. Problems with single zones are recorded in the result, never returned.
func ScanZones(fsys fs.FS, root string, assumedMax units.Power) Scan {
	var sc Scan
	show := func(p string) string { return filepath.Join(root, filepath.FromSlash(p)) }
	entries, err := fs.ReadDir(fsys, PowercapDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		sc.Problem = fmt.Sprintf("no %s: this kernel exposes no powercap interface; load the RAPL driver "+
			"(`sudo modprobe intel_rapl_msr`, Linux ≥ 3.13 with CONFIG_INTEL_RAPL), or measure on bare metal: "+
			"virtual machines and most containers do not expose RAPL", show(PowercapDir))
		return sc
	case errors.Is(err, fs.ErrPermission):
		sc.Problem = fmt.Sprintf("permission denied listing %s: %v; %s", show(PowercapDir), err, PermissionFix)
		return sc
	case err != nil:
		sc.Problem = fmt.Sprintf("read %s: %v", show(PowercapDir), err)
		return sc
	}

	byDir := map[string]*Zone{}
	var zones []*Zone
	for _, e := range entries {
		dir := e.Name()
		if !strings.Contains(dir, ":") {
			continue // a control type directory ("intel-rapl"), not a zone
		}
		m := zoneDirRE.FindStringSubmatch(dir)
		if m == nil {
			sc.Skipped = append(sc.Skipped, Skipped{Dir: dir,
				Reason: fmt.Sprintf("zone directory %s: name is not <control type>:<index>[:<index>…]", show(path.Join(PowercapDir, dir)))})
			continue
		}
		if !strings.Contains(m[1], "rapl") {
			continue // another powercap control type (dtpm, …): not RAPL
		}
		z := &Zone{Dir: dir, ControlType: m[1]}
		for _, s := range strings.Split(m[2][1:], ":") {
			n, _ := strconv.Atoi(s)
			z.Path = append(z.Path, n)
		}
		name, err := readString(fsys, z.File("name"))
		if err != nil || name == "" {
			why := "its name file is empty"
			if err != nil {
				why = err.Error()
			}
			sc.Skipped = append(sc.Skipped, Skipped{Dir: dir,
				Reason: fmt.Sprintf("zone directory %s: cannot tell what it measures: %s", show(path.Join(PowercapDir, dir)), why)})
			continue
		}
		z.Name = name
		byDir[dir] = z
		zones = append(zones, z)
	}

	for _, z := range zones {
		z.Label = z.Name
		z.Kind, z.Scope = kindOf(z.Name)
		if len(z.Path) > 1 {
			parentDir := z.ControlType + ":" + joinInts(z.Path[:len(z.Path)-1])
			if p, ok := byDir[parentDir]; ok {
				z.Label = p.Name + "/" + z.Name
			} else {
				z.Label = parentDir + "/" + z.Name
			}
		}
		readZone(fsys, z, show, assumedMax)
	}

	// Drop zones of secondary control types (intel-rapl-mmio) that duplicate a primary zone.
	primary := map[string]bool{}
	for _, z := range zones {
		if z.ControlType == primaryControlType {
			primary[z.Label] = true
		}
	}
	for _, z := range zones {
		if z.ControlType != primaryControlType && primary[z.Label] {
			sc.Duplicates = append(sc.Duplicates, z.Dir)
			continue
		}
		sc.Zones = append(sc.Zones, *z)
	}
	slices.SortFunc(sc.Zones, compareZones)
	slices.SortFunc(sc.Skipped, func(a, b Skipped) int { return strings.Compare(a.Dir, b.Dir) })
	slices.Sort(sc.Duplicates)
	if len(sc.Zones) == 0 {
		sc.Problem = fmt.Sprintf("no RAPL zones under %s: load the RAPL driver (`sudo modprobe intel_rapl_msr`); "+
			"CPUs without RAPL and most virtual machines cannot be measured this way", show(PowercapDir))
		if len(sc.Skipped) > 0 {
			sc.Problem += fmt.Sprintf(" (%d malformed zone directories were skipped)", len(sc.Skipped))
		}
	}
	return sc
}

// readZone fills in availability, range and constraints.
func readZone(fsys fs.FS, z *Zone, show func(string) string, assumedMax units.Power) {
	energyFile := z.File("energy_uj")
	if _, err := readUint(fsys, energyFile); err != nil {
		z.Reason = unreadableReason(show(energyFile), err)
	} else {
		z.Available = true
	}

	if v, err := readUint(fsys, z.File("max_energy_range_uj")); err != nil {
		z.Notes = append(z.Notes, fmt.Sprintf("no usable max_energy_range_uj (%v): wraps cannot be told from resets, so a wrap is flagged counter_reset and its interval is not counted", err))
	} else if v == 0 {
		z.Notes = append(z.Notes, "max_energy_range_uj is 0: wraps cannot be told from resets, so a wrap is flagged counter_reset and its interval is not counted")
	} else {
		z.MaxRange = units.Energy(v)
	}

	z.Enabled, _ = readString(fsys, z.File("enabled"))
	z.Constraints = readConstraints(fsys, z)
	for _, c := range z.Constraints {
		for _, p := range []units.Power{c.PowerLimit, c.MaxPower} {
			switch {
			case p == 0:
			case p > maxPlausiblePower:
				z.Ignored = append(z.Ignored, fmt.Sprintf("constraint %d (%s) states %s, above the plausible %s: ignored", c.Index, c.Name, p, maxPlausiblePower))
			case p > z.MaxPower:
				z.MaxPower = p
			}
		}
	}
	if z.MaxPower == 0 {
		z.MaxPower = assumedMax
		z.MaxPowerAssumed = true
	}
}

// readConstraints reads the zone's constraint_N_* files; unreadable ones are left at zero.
func readConstraints(fsys fs.FS, z *Zone) []Constraint {
	entries, err := fs.ReadDir(fsys, path.Join(PowercapDir, z.Dir))
	if err != nil {
		return nil
	}
	byIndex := map[int]*Constraint{}
	var order []int
	for _, e := range entries {
		m := constraintRE.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		i, _ := strconv.Atoi(m[1])
		c, ok := byIndex[i]
		if !ok {
			c = &Constraint{Index: i}
			byIndex[i] = c
			order = append(order, i)
		}
		file := z.File(e.Name())
		if m[2] == "name" {
			c.Name, _ = readString(fsys, file)
			continue
		}
		v, err := readUint(fsys, file)
		if err != nil {
			continue
		}
		switch m[2] {
		case "power_limit_uw":
			c.PowerLimit = units.Power(v)
		case "max_power_uw":
			c.MaxPower = units.Power(v)
		case "time_window_us":
			c.TimeWindow = time.Duration(v) * time.Microsecond
		}
	}
	slices.Sort(order)
	out := make([]Constraint, 0, len(order))
	for _, i := range order {
		out = append(out, *byIndex[i])
	}
	return out
}

// unreadableReason explains why energy_uj at shown could not be read, with the fix.
func unreadableReason(shown string, err error) string {
	switch {
	case errors.Is(err, fs.ErrPermission):
		return fmt.Sprintf("permission denied reading %s; %s", shown, PermissionFix)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("no %s: this zone exposes no energy counter (a kernel or firmware limitation; nothing to grant)", shown)
	default:
		return fmt.Sprintf("cannot read %s: %v", shown, err)
	}
}

// kindOf maps a zone name to its domain kind and scope.
func kindOf(name string) (kind, scope string) {
	switch {
	case packageNameRE.MatchString(name):
		return sdk.DomainPackage, sdk.ScopeSocket
	case name == "dram":
		return sdk.DomainDRAM, sdk.ScopeSocket
	case name == "core":
		return sdk.DomainCore, sdk.ScopeSocket
	case name == "uncore":
		return sdk.DomainUncore, sdk.ScopeSocket
	case name == "psys":
		return sdk.DomainPsys, sdk.ScopeNode
	}
	return sdk.DomainOther, sdk.ScopeSocket
}

// compareZones orders zones by control type (primary first), then by index path.
func compareZones(a, b Zone) int {
	ap, bp := a.ControlType == primaryControlType, b.ControlType == primaryControlType
	switch {
	case ap && !bp:
		return -1
	case bp && !ap:
		return 1
	}
	if c := strings.Compare(a.ControlType, b.ControlType); c != 0 {
		return c
	}
	return slices.Compare(a.Path, b.Path)
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ":")
}

// readString reads a sysfs attribute and trims the trailing newline.
func readString(fsys fs.FS, name string) (string, error) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// readUint reads a sysfs attribute holding an unsigned decimal number.
func readUint(fsys fs.FS, name string) (uint64, error) {
	s, err := readString(fsys, name)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s holds %q, not a counter: %w", name, s, err)
	}
	return v, nil
}
