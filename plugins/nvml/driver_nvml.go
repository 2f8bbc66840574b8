package nvml

import (
	"encoding/binary"
	"fmt"
	"math"

	nv "github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/lemctl/lemctl/sdk/units"
)

// This file is the only one that calls go-nvml: it turns NVML's handles, enums and return codes
// into the plain values of Driver.

// NVML field ids (nvml.h).
const (
	fieldPowerAverage = nv.FI_DEV_POWER_AVERAGE // 185, the device's ~1 s moving average, mW
	fieldPowerInstant = nv.FI_DEV_POWER_INSTANT // 186, instantaneous power, mW
)

// OpenLibrary is the real LibraryOpener: go-nvml's dlopen-based library ("" means the loader's
// default, libnvidia-ml.so.1 on the loader's search path).
func OpenLibrary(path string) Driver {
	if path == "" {
		return &nvmlDriver{lib: nv.New()}
	}
	return &nvmlDriver{lib: nv.New(nv.WithLibraryPath(path))}
}

// nvmlDriver is Driver on go-nvml. devs are the handles by index, filled by Device.
type nvmlDriver struct {
	lib  nv.Interface
	devs map[int]nv.Device
}

func callErr(call string, ret nv.Return) error {
	if ret == nv.SUCCESS {
		return nil
	}
	return &Error{Call: call, Code: retName(ret)}
}

func (d *nvmlDriver) Init() error { return callErr("nvmlInit", d.lib.Init()) }

func (d *nvmlDriver) Shutdown() error { return callErr("nvmlShutdown", d.lib.Shutdown()) }

func (d *nvmlDriver) Versions() Versions {
	var v Versions
	if s, ret := d.lib.SystemGetDriverVersion(); ret == nv.SUCCESS {
		v.Driver = s
	}
	if s, ret := d.lib.SystemGetNVMLVersion(); ret == nv.SUCCESS {
		v.NVML = s
	}
	if c, ret := d.lib.SystemGetCudaDriverVersion(); ret == nv.SUCCESS {
		v.CUDADriver = fmt.Sprintf("%d.%d", c/1000, c%1000/10)
	}
	return v
}

func (d *nvmlDriver) DeviceCount() (int, error) {
	n, ret := d.lib.DeviceGetCount()
	return n, callErr("nvmlDeviceGetCount", ret)
}

func (d *nvmlDriver) dev(i int) nv.Device { return d.devs[i] }

func (d *nvmlDriver) Device(i int) (Device, error) {
	dev, ret := d.lib.DeviceGetHandleByIndex(i)
	if err := callErr(fmt.Sprintf("nvmlDeviceGetHandleByIndex(%d)", i), ret); err != nil {
		return Device{}, err
	}
	if d.devs == nil {
		d.devs = map[int]nv.Device{}
	}
	d.devs[i] = dev
	var g Device
	if g.UUID, ret = dev.GetUUID(); ret != nv.SUCCESS {
		return Device{}, callErr(fmt.Sprintf("nvmlDeviceGetUUID(GPU %d)", i), ret)
	}
	if name, ret := dev.GetName(); ret == nv.SUCCESS {
		g.Name = name
	}
	_, ret = dev.GetTotalEnergyConsumption()
	g.Counter = callErr("nvmlDeviceGetTotalEnergyConsumption", ret)
	vals := []nv.FieldValue{{FieldId: fieldPowerInstant}, {FieldId: fieldPowerAverage}}
	if ret := dev.GetFieldValues(vals); ret != nv.SUCCESS {
		g.InstantField = callErr("nvmlDeviceGetFieldValues", ret)
		g.AverageField = g.InstantField
	} else {
		g.InstantField = callErr("nvmlDeviceGetFieldValues(field 186)", nv.Return(vals[0].NvmlReturn))
		g.AverageField = callErr("nvmlDeviceGetFieldValues(field 185)", nv.Return(vals[1].NvmlReturn))
	}
	_, ret = dev.GetPowerUsage()
	g.PowerUsage = callErr("nvmlDeviceGetPowerUsage", ret)
	if _, max, ret := dev.GetPowerManagementLimitConstraints(); ret == nv.SUCCESS && max > 0 {
		g.MaxPower = units.Power(max) * units.Milliwatt
	} else if lim, ret := dev.GetEnforcedPowerLimit(); ret == nv.SUCCESS && lim > 0 {
		g.MaxPower = units.Power(lim) * units.Milliwatt
	}
	return g, nil
}

var archNames = map[nv.DeviceArchitecture]string{
	nv.DEVICE_ARCH_KEPLER:    "kepler",
	nv.DEVICE_ARCH_MAXWELL:   "maxwell",
	nv.DEVICE_ARCH_PASCAL:    "pascal",
	nv.DEVICE_ARCH_VOLTA:     "volta",
	nv.DEVICE_ARCH_TURING:    "turing",
	nv.DEVICE_ARCH_AMPERE:    "ampere",
	nv.DEVICE_ARCH_ADA:       "ada",
	nv.DEVICE_ARCH_HOPPER:    "hopper",
	nv.DEVICE_ARCH_BLACKWELL: "blackwell",
	nv.DEVICE_ARCH_RUBIN:     "rubin",
}

var computeModes = map[nv.ComputeMode]string{
	nv.COMPUTEMODE_DEFAULT:           "default",
	nv.COMPUTEMODE_EXCLUSIVE_THREAD:  "exclusive_thread",
	nv.COMPUTEMODE_PROHIBITED:        "prohibited",
	nv.COMPUTEMODE_EXCLUSIVE_PROCESS: "exclusive_process",
}

func (d *nvmlDriver) Facts(i int) DeviceFacts {
	dev := d.dev(i)
	f := DeviceFacts{Unreported: map[string]error{}}
	na := func(key, call string, ret nv.Return) { f.Unreported[key] = callErr(call, ret) }
	if pci, ret := dev.GetPciInfo(); ret == nv.SUCCESS {
		f.PCIBusID, f.PCIDeviceID = cString(pci.BusId[:]), pci.PciDeviceId
	} else {
		na("pci_bus_id", "nvmlDeviceGetPciInfo", ret)
	}
	if a, ret := dev.GetArchitecture(); ret == nv.SUCCESS {
		name, ok := archNames[a]
		if !ok {
			name = fmt.Sprintf("unknown (%d)", uint32(a))
		}
		f.Architecture = name
	} else {
		na("architecture", "nvmlDeviceGetArchitecture", ret)
	}
	if maj, mnr, ret := dev.GetCudaComputeCapability(); ret == nv.SUCCESS {
		f.ComputeCapability = fmt.Sprintf("%d.%d", maj, mnr)
	} else {
		na("compute_capability", "nvmlDeviceGetCudaComputeCapability", ret)
	}
	if v, ret := dev.GetEnforcedPowerLimit(); ret == nv.SUCCESS {
		f.PowerLimitEnforcedW = float64(v) / 1000
	} else {
		na("power_limit_enforced_w", "nvmlDeviceGetEnforcedPowerLimit", ret)
	}
	if v, ret := dev.GetPowerManagementDefaultLimit(); ret == nv.SUCCESS {
		f.PowerLimitDefaultW = float64(v) / 1000
	} else {
		na("power_limit_default_w", "nvmlDeviceGetPowerManagementDefaultLimit", ret)
	}
	if lo, hi, ret := dev.GetPowerManagementLimitConstraints(); ret == nv.SUCCESS {
		f.PowerLimitMinW, f.PowerLimitMaxW = float64(lo)/1000, float64(hi)/1000
	}
	if v, ret := dev.GetPersistenceMode(); ret == nv.SUCCESS {
		f.Persistence = v == nv.FEATURE_ENABLED
	} else {
		na("persistence_mode", "nvmlDeviceGetPersistenceMode", ret)
	}
	if cur, pend, ret := dev.GetEccMode(); ret == nv.SUCCESS {
		f.ECC, f.ECCPending = cur == nv.FEATURE_ENABLED, pend == nv.FEATURE_ENABLED
	} else {
		na("ecc_mode", "nvmlDeviceGetEccMode", ret)
	}
	if cur, pend, ret := dev.GetMigMode(); ret == nv.SUCCESS {
		f.MIG, f.MIGPending = nv.EnableState(cur) == nv.FEATURE_ENABLED, nv.EnableState(pend) == nv.FEATURE_ENABLED
	} else {
		na("mig_mode", "nvmlDeviceGetMigMode", ret)
	}
	if v, ret := dev.GetComputeMode(); ret == nv.SUCCESS {
		name, ok := computeModes[v]
		if !ok {
			name = fmt.Sprintf("unknown (%d)", int(v))
		}
		f.ComputeMode = name
	} else {
		na("compute_mode", "nvmlDeviceGetComputeMode", ret)
	}
	if mem, ret := dev.GetMemoryInfo(); ret == nv.SUCCESS {
		f.MemoryTotalBytes = mem.Total
	}
	return f
}

func (d *nvmlDriver) Persistence(i int) (bool, error) {
	mode, ret := d.dev(i).GetPersistenceMode()
	return mode == nv.FEATURE_ENABLED, callErr("nvmlDeviceGetPersistenceMode", ret)
}

func (d *nvmlDriver) Energy(i int) (uint64, error) {
	mj, ret := d.dev(i).GetTotalEnergyConsumption()
	return mj, callErr("nvmlDeviceGetTotalEnergyConsumption", ret)
}

func (d *nvmlDriver) PowerFields(i int, instant, average bool) (PowerFields, error) {
	p := PowerFields{InstantW: math.NaN(), AverageW: math.NaN()}
	var buf [2]nv.FieldValue
	vals := buf[:0]
	if instant {
		vals = append(vals, nv.FieldValue{FieldId: fieldPowerInstant})
	}
	if average {
		vals = append(vals, nv.FieldValue{FieldId: fieldPowerAverage})
	}
	if err := callErr("nvmlDeviceGetFieldValues", d.dev(i).GetFieldValues(vals)); err != nil {
		return p, err
	}
	for _, f := range vals {
		err := callErr(fmt.Sprintf("nvmlDeviceGetFieldValues(field %d)", f.FieldId), nv.Return(f.NvmlReturn))
		mw, ok := fieldFloat(f)
		switch f.FieldId {
		case fieldPowerInstant:
			if p.InstantErr = err; err == nil && ok {
				p.InstantW = mw / 1000
			}
		case fieldPowerAverage:
			if p.AverageErr = err; err == nil && ok {
				p.AverageW = mw / 1000
			}
		}
	}
	return p, nil
}

func (d *nvmlDriver) PowerUsage(i int) (float64, error) {
	mw, ret := d.dev(i).GetPowerUsage()
	return float64(mw) / 1000, callErr("nvmlDeviceGetPowerUsage", ret)
}

func (d *nvmlDriver) Slow(i int, skip SlowSet) Slow {
	dev := d.dev(i)
	s := noSlow()
	try := func(k int, ret nv.Return, set func()) {
		switch ret {
		case nv.SUCCESS:
			set()
		case nv.ERROR_NOT_SUPPORTED:
			s.Unsupported |= 1 << k
		}
	}
	if !skip.Has(slowTemperature) {
		v, ret := dev.GetTemperature(nv.TEMPERATURE_GPU)
		try(slowTemperature, ret, func() { s.TemperatureC = float64(v) })
	}
	if !skip.Has(slowSMClock) {
		v, ret := dev.GetClockInfo(nv.CLOCK_SM)
		try(slowSMClock, ret, func() { s.SMClockMHz = float64(v) })
	}
	if !skip.Has(slowMemClock) {
		v, ret := dev.GetClockInfo(nv.CLOCK_MEM)
		try(slowMemClock, ret, func() { s.MemClockMHz = float64(v) })
	}
	if !skip.Has(slowUtilization) {
		v, ret := dev.GetUtilizationRates()
		try(slowUtilization, ret, func() { s.UtilizationPct = float64(v.Gpu) })
	}
	if !skip.Has(slowMemory) {
		v, ret := dev.GetMemoryInfo()
		try(slowMemory, ret, func() { s.MemoryUsedBytes = float64(v.Used) })
	}
	if !skip.Has(slowReasons) {
		v, ret := dev.GetCurrentClocksEventReasons()
		try(slowReasons, ret, func() { s.ClockEventReasons, s.ReasonsRead = v, true })
	}
	return s
}

func (d *nvmlDriver) Processes(i int) []Process {
	dev := d.dev(i)
	var out []Process
	if ps, ret := dev.GetComputeRunningProcesses(); ret == nv.SUCCESS {
		for _, p := range ps {
			out = append(out, Process{PID: p.Pid, UsedGPUMemory: p.UsedGpuMemory})
		}
	}
	if ps, ret := dev.GetGraphicsRunningProcesses(); ret == nv.SUCCESS {
		for _, p := range ps {
			out = append(out, Process{PID: p.Pid, UsedGPUMemory: p.UsedGpuMemory, Graphics: true})
		}
	}
	return out
}

// retNames names NVML return codes without calling nvmlErrorString (a call into the library,
// which is never made when the library is not usable).
var retNames = map[nv.Return]string{
	nv.SUCCESS:                       "SUCCESS",
	nv.ERROR_UNINITIALIZED:           "ERROR_UNINITIALIZED",
	nv.ERROR_INVALID_ARGUMENT:        "ERROR_INVALID_ARGUMENT",
	nv.ERROR_NOT_SUPPORTED:           CodeNotSupported,
	nv.ERROR_NO_PERMISSION:           CodeNoPermission,
	nv.ERROR_ALREADY_INITIALIZED:     "ERROR_ALREADY_INITIALIZED",
	nv.ERROR_NOT_FOUND:               "ERROR_NOT_FOUND",
	nv.ERROR_INSUFFICIENT_SIZE:       "ERROR_INSUFFICIENT_SIZE",
	nv.ERROR_INSUFFICIENT_POWER:      "ERROR_INSUFFICIENT_POWER",
	nv.ERROR_DRIVER_NOT_LOADED:       CodeDriverNotLoaded,
	nv.ERROR_TIMEOUT:                 "ERROR_TIMEOUT",
	nv.ERROR_IRQ_ISSUE:               "ERROR_IRQ_ISSUE",
	nv.ERROR_LIBRARY_NOT_FOUND:       CodeLibraryNotFound,
	nv.ERROR_FUNCTION_NOT_FOUND:      "ERROR_FUNCTION_NOT_FOUND",
	nv.ERROR_CORRUPTED_INFOROM:       "ERROR_CORRUPTED_INFOROM",
	nv.ERROR_GPU_IS_LOST:             CodeGPUIsLost,
	nv.ERROR_RESET_REQUIRED:          "ERROR_RESET_REQUIRED",
	nv.ERROR_OPERATING_SYSTEM:        "ERROR_OPERATING_SYSTEM",
	nv.ERROR_LIB_RM_VERSION_MISMATCH: CodeRMVersionMismatch,
	nv.ERROR_IN_USE:                  "ERROR_IN_USE",
	nv.ERROR_MEMORY:                  "ERROR_MEMORY",
	nv.ERROR_NO_DATA:                 "ERROR_NO_DATA",
	nv.ERROR_VGPU_ECC_NOT_SUPPORTED:  "ERROR_VGPU_ECC_NOT_SUPPORTED",
	nv.ERROR_UNKNOWN:                 "ERROR_UNKNOWN",
}

func retName(r nv.Return) string {
	if s, ok := retNames[r]; ok {
		return s
	}
	return fmt.Sprintf("NVML error %d", int32(r))
}

// fieldFloat decodes an NVML field value.
func fieldFloat(f nv.FieldValue) (float64, bool) {
	b := f.Value[:]
	switch nv.ValueType(f.ValueType) {
	case nv.VALUE_TYPE_DOUBLE:
		return math.Float64frombits(binary.LittleEndian.Uint64(b)), true
	case nv.VALUE_TYPE_UNSIGNED_INT:
		return float64(binary.LittleEndian.Uint32(b)), true
	case nv.VALUE_TYPE_UNSIGNED_LONG, nv.VALUE_TYPE_UNSIGNED_LONG_LONG:
		return float64(binary.LittleEndian.Uint64(b)), true
	case nv.VALUE_TYPE_SIGNED_LONG_LONG:
		return float64(int64(binary.LittleEndian.Uint64(b))), true
	case nv.VALUE_TYPE_SIGNED_INT:
		return float64(int32(binary.LittleEndian.Uint32(b))), true
	case nv.VALUE_TYPE_UNSIGNED_SHORT:
		return float64(binary.LittleEndian.Uint16(b)), true
	}
	return 0, false
}

// cString converts a NUL-terminated C char array.
func cString(b []int8) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}
