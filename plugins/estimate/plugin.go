package estimate

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/lemctl/lemctl/sdk"
)

// Name and Version of the plugin.
const (
	Name    = "estimate"
	Version = "0.1.0"
)

// Configuration keys.
const (
	KeyWattsPerCore = "watts_per_core"
	KeyInterval     = "interval"
	KeyProcRoot     = "proc_root"
	KeyPID          = "pid"
)

// Schema is the plugin's configuration schema.
func Schema() []sdk.ConfigKey {
	return []sdk.ConfigKey{
		{Key: KeyWattsPerCore, Type: sdk.TypeFloat, Min: sdk.Bound(0), Max: sdk.Bound(1000),
			Doc: "power of one fully busy CPU core in watts; 0 or absent: the table entry for this CPU model (docs/estimate.md), else the domain is unavailable"},
		{Key: KeyInterval, Type: sdk.TypeDuration, SamplingInterval: true, Default: DefaultInterval.String(),
			Min: sdk.Bound(MinInterval.Seconds()), Max: sdk.Bound(MaxInterval.Seconds()),
			Doc: "sampling interval; CPU times advance in clock ticks of 10 ms"},
		{Key: KeyProcRoot, Type: sdk.TypeString, Default: DefaultProcRoot,
			Doc: "absolute path of the proc file system the CPU times and cpuinfo are read from"},
		{Key: KeyPID, Type: sdk.TypeInt, Default: 0, Min: sdk.Bound(0), Max: sdk.Bound(1 << 22),
			Doc: "root of the measured process tree; 0: the plugin's parent (the lemctl worker, whose descendants include the engine plugin)"},
	}
}

// Configure applies a table the sdk has validated against Schema.
func (m *Meter) Configure(_ context.Context, cfg sdk.Config) ([]sdk.ConfigError, error) {
	set := DefaultSettings()
	var errs []sdk.ConfigError
	if cfg.Has(KeyWattsPerCore) {
		set.WattsPerCore = cfg.Float(KeyWattsPerCore)
	}
	if cfg.Has(KeyInterval) {
		set.Interval = cfg.Duration(KeyInterval)
	}
	if cfg.Has(KeyProcRoot) {
		root := cfg.String(KeyProcRoot)
		if !filepath.IsAbs(root) {
			errs = append(errs, sdk.ConfigError{Key: KeyProcRoot, Message: fmt.Sprintf("%q is not an absolute path", root), Valid: "an absolute directory path such as /proc"})
		} else {
			set.ProcRoot = filepath.Clean(root)
		}
	}
	if cfg.Has(KeyPID) {
		set.PID = cfg.Int(KeyPID)
	}
	if len(errs) > 0 {
		return errs, nil
	}
	set.Interval = set.Interval.Round(time.Millisecond)
	m.SetSettings(set)
	return nil, nil
}

// NewPlugin returns the estimate plugin for sdk.Serve. A nil logger logs JSON to stderr.
func NewPlugin(log hclog.Logger) *sdk.Plugin {
	m := NewMeter(Options{Logger: log})
	return &sdk.Plugin{
		Name:        Name,
		Version:     Version,
		Description: "estimated CPU energy of the worker's processes (CPU time × watts per core) for machines without an energy counter; never a measurement",
		Capabilities: map[string]string{
			"domains": "package",
			"method":  sdk.MethodEstimate,
		},
		Schema:    Schema(),
		Configure: m.Configure,
		Energy:    m,
	}
}
