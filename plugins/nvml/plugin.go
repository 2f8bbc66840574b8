package nvml

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/lemctl/lemctl/sdk"
)

// Name and Version of the plugin.
const (
	Name    = "nvml"
	Version = "0.1.0"
)

// Configuration keys.
const (
	KeyLibraryPath = "library_path"
	KeyInterval    = "interval"
	KeyDevices     = "devices"
	KeyAllowedPIDs = "allowed_pids"
)

// Schema is the plugin's configuration schema.
func Schema() []sdk.ConfigKey {
	return []sdk.ConfigKey{
		{Key: KeyLibraryPath, Type: sdk.TypeString,
			Doc: "absolute path of libnvidia-ml.so.1; default: the dynamic loader's search, then " + fmt.Sprint(DriverFolders)},
		{Key: KeyInterval, Type: sdk.TypeDuration, SamplingInterval: true, Default: DefaultInterval.String(),
			Min: sdk.Bound(MinInterval.Seconds()), Max: sdk.Bound(MaxInterval.Seconds()),
			Doc: "fast sampling interval of energy and power; slow fields (temperature, clocks, utilisation, memory, clock-event reasons) are read every max(interval, 100ms)"},
		{Key: KeyDevices, Type: sdk.TypeStrings,
			Doc: "GPUs to measure, as NVML indices (\"0\") or UUIDs (\"GPU-…\", a unique prefix is enough); default: the GPUs in CUDA_VISIBLE_DEVICES, else all"},
		{Key: KeyAllowedPIDs, Type: sdk.TypeInts,
			Doc: "process ids whose process trees may use the measured GPUs without a foreign_gpu_process finding, besides the plugin's parent (the lemctl worker) and its descendants"},
	}
}

// Configure checks a table the sdk validated against Schema (defaults filled in) and applies it.
func (m *Meter) Configure(_ context.Context, cfg sdk.Config) ([]sdk.ConfigError, error) {
	set := DefaultSettings()
	var errs []sdk.ConfigError
	if p := cfg.String(KeyLibraryPath); p != "" {
		switch st, err := m.opts.Stat(p); {
		case !filepath.IsAbs(p):
			errs = append(errs, sdk.ConfigError{Key: KeyLibraryPath, Message: fmt.Sprintf("%q is not an absolute path", p), Valid: "an absolute path such as /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"})
		case errors.Is(err, fs.ErrNotExist):
			errs = append(errs, sdk.ConfigError{Key: KeyLibraryPath, Message: fmt.Sprintf("%s does not exist", p), Valid: "the path of an existing libnvidia-ml.so.1"})
		case err != nil:
			errs = append(errs, sdk.ConfigError{Key: KeyLibraryPath, Message: fmt.Sprintf("stat %s: %v", p, err), Valid: "a readable libnvidia-ml.so.1"})
		case st.IsDir():
			errs = append(errs, sdk.ConfigError{Key: KeyLibraryPath, Message: fmt.Sprintf("%s is a directory", p), Valid: "the path of the library file itself, e.g. " + filepath.Join(p, DefaultLibraryName)})
		default:
			set.LibraryPath = filepath.Clean(p)
		}
	}
	if cfg.Has(KeyInterval) {
		if d := cfg.Duration(KeyInterval); d < MinInterval {
			errs = append(errs, sdk.ConfigError{Key: KeyInterval, Message: fmt.Sprintf("%s is shorter than NVML's fastest update", d), Valid: "a duration ≥ 10ms"})
		} else {
			set.Interval = d.Round(time.Microsecond)
		}
	}
	for _, e := range cfg.Strings(KeyDevices) {
		if msg := validEntry(e); msg != "" {
			errs = append(errs, sdk.ConfigError{Key: KeyDevices, Message: msg, Valid: `GPU indices ("0") or UUIDs ("GPU-8a3f…")`})
			continue
		}
		set.Devices = append(set.Devices, e)
	}
	for _, p := range cfg.Ints(KeyAllowedPIDs) {
		if p <= 0 {
			errs = append(errs, sdk.ConfigError{Key: KeyAllowedPIDs, Message: fmt.Sprintf("%d is not a process id", p), Valid: "positive process ids"})
			continue
		}
		set.AllowedPIDs = append(set.AllowedPIDs, p)
	}
	if len(errs) > 0 {
		return errs, nil
	}
	if err := m.SetSettings(set); err != nil {
		return []sdk.ConfigError{{Key: KeyLibraryPath, Message: err.Error(), Valid: "the library already loaded"}}, nil
	}
	return nil, nil
}

// NewPlugin returns the nvml plugin for sdk.Serve. A nil logger logs JSON to stderr.
func NewPlugin(log hclog.Logger) *sdk.Plugin {
	return PluginFor(NewMeter(Options{Logger: log}))
}

// PluginFor wraps a meter (e.g. one built on a fake Driver in tests) as a plugin.
func PluginFor(m *Meter) *sdk.Plugin {
	return &sdk.Plugin{
		Name:        Name,
		Version:     Version,
		Description: "NVIDIA GPU energy from NVML: the energy counter (Volta and newer), else integrated instant or averaged power",
		Capabilities: map[string]string{
			"domains": "gpu",
			"method":  sdk.MethodCounter + "," + sdk.MethodPowerIntegration,
		},
		Schema:    Schema(),
		Configure: m.Configure,
		Energy:    m,
	}
}
