package runcmd

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/echo"
	"github.com/lemctl/lemctl/sdk"
)

// meterDevice is a device an energy plugin reported in its inventory.
type meterDevice struct {
	meter string
	info  sdk.DeviceInfo
}

func (d meterDevice) String() string { return fmt.Sprintf("%s (%s)", echo.Quote(d.info.ID), d.meter) }

// resolveDevices maps each launch.devices entry to one device of inv (docs/config.md, "launch"):
// a string of digits is an index within one plugin's inventory, anything else a device id. It
// refuses, as a usage error naming launch.devices and the valid ids, an entry that matches no
// device, an index or id that matches devices of several plugins (an id only when their
// visibility environments differ), two entries that name the same device, and a device whose
// plugin reports no visibility environment (a worker could not be made to see only it) or no
// vendor (the engine could not be told what it runs on).
func resolveDevices(entries []string, inv []meterDevice) ([]meterDevice, error) {
	out := make([]meterDevice, 0, len(entries))
	named := map[string]string{} // meter + "\x00" + id → the entry that named it
	for _, e := range entries {
		var matches []meterDevice
		n, err := strconv.Atoi(e)
		isIndex := err == nil && n >= 0
		for _, d := range inv {
			if isIndex && d.info.Index == n || !isIndex && d.info.ID == e {
				matches = append(matches, d)
			}
		}
		if !isIndex && len(matches) > 1 && sameEnv(matches) {
			matches = matches[:1] // one device seen by several plugins
		}
		switch {
		case len(matches) == 0 && isIndex:
			return nil, cliutil.Usagef("launch.devices: index %d matches no device in the energy plugins' inventories (valid: %s)", n, validDevices(inv))
		case len(matches) == 0:
			return nil, cliutil.Usagef("launch.devices: %s is not a device any energy plugin of [energy].meters reports (valid: %s)", echo.Quote(e), validDevices(inv))
		case len(matches) > 1:
			names := make([]string, len(matches))
			for i, m := range matches {
				names[i] = m.String()
			}
			return nil, cliutil.Usagef("launch.devices: %s is ambiguous: it names %s; name one device by an id only one plugin reports, or list a single meter in [energy].meters (valid: %s)",
				entryName(e), strings.Join(names, " and "), validDevices(inv))
		}
		d := matches[0]
		key := d.meter + "\x00" + d.info.ID
		if prev, ok := named[key]; ok {
			return nil, cliutil.Usagef("launch.devices: %s and %s name the same device %s (valid: %s)", entryName(prev), entryName(e), d, validDevices(inv))
		}
		named[key] = e
		if len(d.info.VisibilityEnv) == 0 {
			return nil, cliutil.Usagef("launch.devices: device %s cannot be isolated: its energy plugin reports no visibility environment for it, so a worker would see every device; use a plugin that reports one (docs/protocol.md, \"Devices\")", d)
		}
		if d.info.Vendor == "" {
			return nil, cliutil.Usagef("launch.devices: device %s reports no vendor, so lemctl cannot tell the engine what it runs on; its energy plugin must describe the device (docs/protocol.md, \"Devices\")", d)
		}
		out = append(out, d)
	}
	return out, nil
}

// entryName shows a launch.devices entry in a message: "index 0" or a quoted id.
func entryName(e string) string {
	if n, err := strconv.Atoi(e); err == nil && n >= 0 {
		return fmt.Sprintf("index %d", n)
	}
	return echo.Quote(e)
}

// sameEnv reports whether every device of ds has the same visibility environment.
func sameEnv(ds []meterDevice) bool {
	for _, d := range ds[1:] {
		if len(d.info.VisibilityEnv) != len(ds[0].info.VisibilityEnv) {
			return false
		}
		for k, v := range d.info.VisibilityEnv {
			if w, ok := ds[0].info.VisibilityEnv[k]; !ok || w != v {
				return false
			}
		}
	}
	return true
}

// validDevices lists the devices of inv per plugin, as "plugin: 0 = id, 1 = id; plugin: …".
func validDevices(inv []meterDevice) string {
	var parts []string
	var cur string
	var items []string
	flush := func() {
		if cur != "" {
			parts = append(parts, cur+": "+strings.Join(items, ", "))
		}
	}
	for _, d := range inv {
		if d.meter != cur {
			flush()
			cur, items = d.meter, nil
		}
		items = append(items, fmt.Sprintf("%d = %s", d.info.Index, echo.Quote(d.info.ID)))
	}
	flush()
	return strings.Join(parts, "; ")
}
