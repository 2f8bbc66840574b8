package nvml

import (
	"errors"
	"math"

	"github.com/lemctl/lemctl/sdk/units"
)

// Driver is NVML as the meter uses it: a few calls that return plain Go values. The real one
// (nvmlDriver, driver_nvml.go) is the only code that calls go-nvml; tests give a fake.
//
// No method but Init is called unless Init returned nil (a call into a library that was never
// initialised kills the process): initLibrary keeps that promise.
type Driver interface {
	// Init initialises the library. An *Error with Code CodeLibraryNotFound means the library
	// itself could not be loaded (the next candidate may be tried).
	Init() error
	Shutdown() error
	// Versions reports the driver, NVML and CUDA driver versions ("" when unknown).
	Versions() Versions
	DeviceCount() (int, error)
	// Device probes GPU i once: its identity and which energy sources answer.
	Device(i int) (Device, error)
	// Facts reads GPU i's limits and modes (for the environment).
	Facts(i int) DeviceFacts
	// Persistence reports whether GPU i's persistence mode is enabled.
	Persistence(i int) (bool, error)
	// Energy reads GPU i's energy counter in mJ.
	Energy(i int) (uint64, error)
	// PowerFields reads the instant and/or average power fields (each only when asked).
	PowerFields(i int, instant, average bool) (PowerFields, error)
	// PowerUsage reads nvmlDeviceGetPowerUsage, a ~1 s moving average, in W.
	PowerUsage(i int) (float64, error)
	// Slow reads the slow fields, skipping those in skip.
	Slow(i int, skip SlowSet) Slow
	// Processes lists the compute and graphics processes on GPU i (a list that cannot be read
	// is left out).
	Processes(i int) []Process
}

// Codes of NVML return values the meter tells apart (NVML's names).
const (
	CodeLibraryNotFound   = "ERROR_LIBRARY_NOT_FOUND"
	CodeNotSupported      = "ERROR_NOT_SUPPORTED"
	CodeDriverNotLoaded   = "ERROR_DRIVER_NOT_LOADED"
	CodeNoPermission      = "ERROR_NO_PERMISSION"
	CodeRMVersionMismatch = "ERROR_LIB_RM_VERSION_MISMATCH"
	CodeGPUIsLost         = "ERROR_GPU_IS_LOST"
)

// Error is an NVML call that failed: the call and the name of NVML's return code.
type Error struct {
	Call, Code string
}

func (e *Error) Error() string { return e.Call + ": " + e.Code }

// codeOf returns the NVML code of err, or its text when it is no NVML error.
func codeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return err.Error()
}

// Versions are the library's versions.
type Versions struct {
	Driver, NVML, CUDADriver string
}

// Device is one GPU as probed at discovery.
type Device struct {
	UUID string
	Name string // "" when NVML cannot tell
	// Why each energy source cannot be read; nil where it answers.
	Counter, InstantField, AverageField, PowerUsage error
	// MaxPower is the highest power limit the GPU allows, else its enforced limit; 0 unknown.
	MaxPower units.Power
}

// DeviceFacts are a GPU's limits and modes. Unreported holds, per fact key, why the device could
// not report it.
type DeviceFacts struct {
	PCIBusID                                string
	PCIDeviceID                             uint32
	Architecture                            string // "hopper", or "unknown (n)"
	ComputeCapability                       string // "9.0"
	PowerLimitEnforcedW, PowerLimitDefaultW float64
	// PowerLimitMinW and PowerLimitMaxW are 0 when unknown.
	PowerLimitMinW, PowerLimitMaxW float64
	Persistence, ECC, ECCPending   bool
	MIG, MIGPending                bool
	ComputeMode                    string // "default", "exclusive_process", …
	MemoryTotalBytes               uint64 // 0 when unknown
	Unreported                     map[string]error
}

// PowerFields are the power fields' values in W, NaN where not read, with why.
type PowerFields struct {
	InstantW, AverageW     float64
	InstantErr, AverageErr error
}

// SlowSet is a set of slow fields (a bit per slow* constant).
type SlowSet uint8

// Has reports whether field k is in the set.
func (s SlowSet) Has(k int) bool { return s&(1<<k) != 0 }

// Slow fields.
const (
	slowTemperature = iota
	slowSMClock
	slowMemClock
	slowUtilization
	slowMemory
	slowReasons
)

// Slow is one reading of the slow fields: NaN (reasons: 0 with ReasonsRead false) where not
// read, and the fields the device said it does not support.
type Slow struct {
	TemperatureC, SMClockMHz, MemClockMHz, UtilizationPct, MemoryUsedBytes float64
	ClockEventReasons                                                      uint64
	ReasonsRead                                                            bool
	Unsupported                                                            SlowSet
}

// noSlow returns a Slow with nothing read.
func noSlow() Slow {
	nan := math.NaN()
	return Slow{TemperatureC: nan, SMClockMHz: nan, MemClockMHz: nan, UtilizationPct: nan, MemoryUsedBytes: nan}
}

// Process is a process on a GPU.
type Process struct {
	PID           uint32
	UsedGPUMemory uint64
	Graphics      bool
}
