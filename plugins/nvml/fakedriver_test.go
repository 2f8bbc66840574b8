package nvml_test

import (
	"fmt"
	"math"
	"sync/atomic"

	"github.com/lemctl/lemctl/plugins/nvml"
	"github.com/lemctl/lemctl/sdk/clock"
	"github.com/lemctl/lemctl/sdk/units"
)

// fakeDriver is an nvml.Driver of plain values: what each GPU answers. Every call but Init
// panics unless Init succeeded, which proves the meter never calls NVML after a failed Init.
type fakeDriver struct {
	initErr  error
	inits    *atomic.Int32 // Init calls, when set
	ready    bool
	versions nvml.Versions
	gpus     []*fakeGPU
	start    int64
}

// fakeGPU is one GPU: its probe answers, its facts, a constant power and its processes.
type fakeGPU struct {
	dev         nvml.Device
	facts       nvml.DeviceFacts
	watts       float64
	persistence bool
	procs       []nvml.Process
}

// gpuCaps says which energy sources a fake GPU has.
type gpuCaps struct {
	counter, instant, average, usage bool
	watts                            float64 // constant power
}

var fullCaps = gpuCaps{counter: true, instant: true, average: true, usage: true, watts: 300}

func notSupported(call string) error {
	return &nvml.Error{Call: call, Code: nvml.CodeNotSupported}
}

// fakeDGX returns eight H200s, GPU i with the sources caps(i): a constant power and an energy
// counter that integrates it on the real clock.
func fakeDGX(caps func(i int) gpuCaps) *fakeDriver {
	f := &fakeDriver{versions: nvml.Versions{Driver: "550.54.15", NVML: "12.550.54.15", CUDADriver: "12.4"}, start: clock.Mono()}
	for i := range 8 {
		c := caps(i)
		g := &fakeGPU{watts: c.watts, persistence: true,
			dev: nvml.Device{UUID: fmt.Sprintf("GPU-%08d-aaaa-bbbb-cccc-%012d", i, i), Name: "NVIDIA H200 141GB HBM3e",
				MaxPower: 700 * units.Watt},
			facts: nvml.DeviceFacts{PCIBusID: fmt.Sprintf("0000:%02x:00.0", i), PCIDeviceID: 0x233510de, Architecture: "hopper",
				ComputeCapability: "9.0", PowerLimitEnforcedW: 700, PowerLimitDefaultW: 700, PowerLimitMinW: 200, PowerLimitMaxW: 700,
				Persistence: true, ECC: true, ECCPending: true, ComputeMode: "exclusive_process", MemoryTotalBytes: 150 << 30}}
		if !c.counter {
			g.dev.Counter = notSupported("nvmlDeviceGetTotalEnergyConsumption")
		}
		if !c.instant {
			g.dev.InstantField = notSupported("nvmlDeviceGetFieldValues(field 186)")
		}
		if !c.average {
			g.dev.AverageField = notSupported("nvmlDeviceGetFieldValues(field 185)")
		}
		if !c.usage {
			g.dev.PowerUsage = notSupported("nvmlDeviceGetPowerUsage")
		}
		f.gpus = append(f.gpus, g)
	}
	return f
}

func (f *fakeDriver) uuid(i int) string { return f.gpus[i].dev.UUID }

func (f *fakeDriver) gpu(i int) *fakeGPU {
	if !f.ready {
		panic("NVML called without a successful Init")
	}
	return f.gpus[i]
}

func (f *fakeDriver) Init() error {
	if f.inits != nil {
		f.inits.Add(1)
	}
	f.ready = f.initErr == nil
	return f.initErr
}

func (f *fakeDriver) Shutdown() error { f.gpu(0); f.ready = false; return nil }

func (f *fakeDriver) Versions() nvml.Versions {
	if !f.ready {
		panic("NVML called without a successful Init")
	}
	return f.versions
}

func (f *fakeDriver) DeviceCount() (int, error) {
	if !f.ready {
		panic("NVML called without a successful Init")
	}
	return len(f.gpus), nil
}

func (f *fakeDriver) Device(i int) (nvml.Device, error) { return f.gpu(i).dev, nil }

func (f *fakeDriver) Facts(i int) nvml.DeviceFacts { return f.gpu(i).facts }

func (f *fakeDriver) Persistence(i int) (bool, error) { return f.gpu(i).persistence, nil }

func (f *fakeDriver) Energy(i int) (uint64, error) {
	g := f.gpu(i)
	if g.dev.Counter != nil {
		return 0, g.dev.Counter
	}
	return 5_000_000 + uint64(g.watts*float64(clock.Mono()-f.start)/1e6), nil
}

func (f *fakeDriver) PowerFields(i int, instant, average bool) (nvml.PowerFields, error) {
	g := f.gpu(i)
	p := nvml.PowerFields{InstantW: math.NaN(), AverageW: math.NaN()}
	if instant {
		if p.InstantErr = g.dev.InstantField; p.InstantErr == nil {
			p.InstantW = g.watts
		}
	}
	if average {
		if p.AverageErr = g.dev.AverageField; p.AverageErr == nil {
			p.AverageW = g.watts
		}
	}
	return p, nil
}

func (f *fakeDriver) PowerUsage(i int) (float64, error) {
	g := f.gpu(i)
	return g.watts, g.dev.PowerUsage
}

func (f *fakeDriver) Slow(i int, _ nvml.SlowSet) nvml.Slow {
	f.gpu(i)
	return nvml.Slow{TemperatureC: 45, SMClockMHz: 1980, MemClockMHz: 2619, UtilizationPct: 99, MemoryUsedBytes: 1 << 30, ReasonsRead: true}
}

func (f *fakeDriver) Processes(i int) []nvml.Process { return f.gpu(i).procs }
