package rapl

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/units"
)

// Name and Version of the plugin.
const (
	Name    = "rapl"
	Version = "0.1.0"
)

// Configuration keys.
const (
	KeySysfsRoot       = "sysfs_root"
	KeyInterval        = "interval"
	KeyZones           = "zones"
	KeyAssumedMaxPower = "assumed_max_power_w"
)

// Schema is the plugin's configuration schema.
func Schema() []sdk.ConfigKey {
	return []sdk.ConfigKey{
		{Key: KeySysfsRoot, Type: sdk.TypeString, Default: DefaultRoot,
			Doc: "absolute path of the sysfs root; zones are read from <sysfs_root>/class/powercap"},
		{Key: KeyInterval, Type: sdk.TypeDuration, SamplingInterval: true, Default: DefaultInterval.String(),
			Min: sdk.Bound(MinInterval.Seconds()), Max: sdk.Bound(MaxInterval.Seconds()),
			Doc: "fast sampling interval; shortened automatically so that every zone is read at least twice per wrap period at its max power"},
		{Key: KeyZones, Type: sdk.TypeStrings,
			Doc: "zones to measure (default all): domain ids (rapl:intel-rapl:0), zone directories (intel-rapl:0:2), names or labels (package-1, package-0/dram) or kinds (package, dram, psys, core, uncore)"},
		{Key: KeyAssumedMaxPower, Type: sdk.TypeFloat, Default: DefaultAssumedMaxPower.Watts(),
			Min: sdk.Bound(1), Max: sdk.Bound(maxPlausiblePower.Watts()),
			Doc: "max power in watts assumed for a zone whose constraint files state none; bounds the poll interval and tells a reset from a wrap"},
	}
}

// zoneFilterRE accepts what a zones entry may be; see Settings.Zones.
var zoneFilterRE = regexp.MustCompile(`^(rapl:)?[a-z][a-z0-9-]*(:[0-9]+)+$|^[a-z][a-z0-9-]*(/[a-z][a-z0-9-]*)?$`)

// Configure checks a table the sdk has validated against Schema (defaults filled in) and applies
// it to the meter.
func (m *Meter) Configure(_ context.Context, cfg sdk.Config) ([]sdk.ConfigError, error) {
	set := DefaultSettings()
	var errs []sdk.ConfigError
	if cfg.Has(KeySysfsRoot) {
		root := cfg.String(KeySysfsRoot)
		switch st, err := os.Stat(root); {
		case !filepath.IsAbs(root):
			errs = append(errs, sdk.ConfigError{Key: KeySysfsRoot, Message: fmt.Sprintf("%q is not an absolute path", root), Valid: "an absolute directory path such as /sys"})
		case errors.Is(err, fs.ErrNotExist):
			errs = append(errs, sdk.ConfigError{Key: KeySysfsRoot, Message: fmt.Sprintf("%s does not exist", root), Valid: "an existing directory such as /sys"})
		case err != nil:
			errs = append(errs, sdk.ConfigError{Key: KeySysfsRoot, Message: fmt.Sprintf("stat %s: %v", root, err), Valid: "a readable directory such as /sys"})
		case !st.IsDir():
			errs = append(errs, sdk.ConfigError{Key: KeySysfsRoot, Message: fmt.Sprintf("%s is not a directory", root), Valid: "a directory such as /sys"})
		default:
			set.Root = filepath.Clean(root)
		}
	}
	if cfg.Has(KeyInterval) {
		d := cfg.Duration(KeyInterval)
		if d < MinInterval {
			errs = append(errs, sdk.ConfigError{Key: KeyInterval, Message: fmt.Sprintf("%s is shorter than the counters' update period", d), Valid: "a duration ≥ 1ms"})
		} else {
			set.Interval = d.Round(time.Microsecond)
		}
	}
	for _, z := range cfg.Strings(KeyZones) {
		if !zoneFilterRE.MatchString(z) {
			errs = append(errs, sdk.ConfigError{Key: KeyZones, Message: fmt.Sprintf("%q is not a zone id, directory, name or kind", z),
				Valid: `entries like "rapl:intel-rapl:0", "intel-rapl:0:2", "package-1", "package-0/dram" or "dram"`})
			continue
		}
		set.Zones = append(set.Zones, z)
	}
	if cfg.Has(KeyAssumedMaxPower) {
		set.AssumedMaxPower = units.PowerFromWatts(cfg.Float(KeyAssumedMaxPower))
	}
	if len(errs) > 0 {
		return errs, nil
	}
	m.SetSettings(set)
	return nil, nil
}

// NewPlugin returns the rapl plugin for sdk.Serve. A nil logger logs JSON to stderr.
func NewPlugin(log hclog.Logger) *sdk.Plugin {
	m := NewMeter(Options{Logger: log})
	return &sdk.Plugin{
		Name:        Name,
		Version:     Version,
		Description: "CPU package, DRAM and psys energy from Linux powercap RAPL counters (energy_uj)",
		Capabilities: map[string]string{
			"domains": "package,dram,psys,core,uncore",
			"method":  sdk.MethodCounter,
		},
		Schema:    Schema(),
		Configure: m.Configure,
		Energy:    m,
	}
}
