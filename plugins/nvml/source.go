package nvml

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	nv "github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/clock"
	"github.com/lemctl/lemctl/sdk/sampler"
)

// ProcessInterval is how often a session lists the processes running on its GPUs (besides at its
// start and its stop): process listing is the most expensive NVML read, and a process that uses a
// GPU for less than a second hardly moves its energy.
const ProcessInterval = time.Second

// slow fields, tracked per GPU so that an unsupported one is asked only once.
const (
	slowTemperature = iota
	slowSMClock
	slowMemClock
	slowUtilization
	slowMemory
	slowReasons
	slowCount
)

// entry is one domain of a session.
type entry struct {
	id     string
	g      *gpu  // nil for a domain that is unavailable from the start
	reason error // why unavailable

	fields      []nv.FieldValue // reused buffer for GetFieldValues
	unsupported [slowCount]bool

	// health state, guarded by source.mu
	persistenceOff bool
	foreign        map[uint32]*foreignProcess
}

// foreignProcess is a process outside the allowed process trees seen on a GPU.
type foreignProcess struct {
	pid        uint32
	name       string
	visible    bool // false: the pid is not in this PID namespace, so its owner is unknown
	firstSeen  int64
	graphics   bool
	usedMemory uint64
}

// source reads a session's GPUs for the sdk sampler.
type source struct {
	entries  []*entry
	owners   *procTree
	procEach time.Duration

	mu       sync.Mutex
	lastProc int64
}

var _ sampler.Source = (*source)(nil)

func newSource(entries []*entry, owners *procTree) *source {
	for _, e := range entries {
		if e.g == nil || e.g.power != powerFields {
			continue
		}
		if e.g.hasInstant {
			e.fields = append(e.fields, nv.FieldValue{FieldId: fieldPowerInstant})
		}
		if e.g.hasAvgFld {
			e.fields = append(e.fields, nv.FieldValue{FieldId: fieldPowerAverage})
		}
	}
	return &source{entries: entries, owners: owners, procEach: ProcessInterval}
}

// Read takes one reading per domain: the counter (µJ) or the power, and the slow fields when
// asked. A counter domain whose power cannot be read still counts; a power-integration domain
// whose power cannot be read has failed this time.
func (s *source) Read(_ context.Context, slow bool) ([]sampler.Reading, error) {
	out := make([]sampler.Reading, 0, len(s.entries))
	for _, e := range s.entries {
		r := sampler.NewReading(e.id)
		if e.g == nil {
			r.Err = e.reason
			out = append(out, r)
			continue
		}
		g := e.g
		if g.method == sdk.MethodCounter {
			mj, ret := g.dev.GetTotalEnergyConsumption()
			r.MonoNS = clock.Mono()
			if err := callErr("nvmlDeviceGetTotalEnergyConsumption", ret); err != nil {
				r.Err = err
				out = append(out, r)
				continue
			}
			r.Counter = mj * 1000 // mJ → µJ
			_ = e.readPower(&r)
		} else {
			err := e.readPower(&r)
			r.MonoNS = clock.Mono()
			if err != nil {
				r.Err = err
				out = append(out, r)
				continue
			}
		}
		if slow {
			e.readSlow(&r)
		}
		out = append(out, r)
	}
	if slow {
		s.mu.Lock()
		due := time.Duration(clock.Mono()-s.lastProc) >= s.procEach
		s.mu.Unlock()
		if due {
			s.checkProcesses()
		}
	}
	return out, nil
}

// readPower fills the instant and average power.
func (e *entry) readPower(r *sampler.Reading) error {
	switch e.g.power {
	case powerFields:
		for i := range e.fields {
			e.fields[i].NvmlReturn = 0
			e.fields[i].Value = [8]byte{}
		}
		if err := callErr("nvmlDeviceGetFieldValues", e.g.dev.GetFieldValues(e.fields)); err != nil {
			return err
		}
		var firstErr error
		for _, f := range e.fields {
			if ret := nv.Return(f.NvmlReturn); ret != nv.SUCCESS {
				if firstErr == nil {
					firstErr = callErr(fmt.Sprintf("nvmlDeviceGetFieldValues(field %d)", f.FieldId), ret)
				}
				continue
			}
			mw, ok := fieldFloat(f)
			if !ok {
				continue
			}
			switch f.FieldId {
			case fieldPowerInstant:
				r.PowerW = mw / 1000
			case fieldPowerAverage:
				r.AveragePowerW = mw / 1000
			}
		}
		if math.IsNaN(r.PowerW) && math.IsNaN(r.AveragePowerW) {
			if firstErr == nil {
				firstErr = errors.New("nvmlDeviceGetFieldValues: no power value")
			}
			return firstErr
		}
		if e.g.confidence == sdk.ConfidenceMeasured && e.g.method == sdk.MethodPowerIntegration && math.IsNaN(r.PowerW) {
			// Never integrate the moving average under a "measured" label.
			return firstErr
		}
		return nil
	case powerAverage:
		mw, ret := e.g.dev.GetPowerUsage()
		if err := callErr("nvmlDeviceGetPowerUsage", ret); err != nil {
			return err
		}
		r.AveragePowerW = float64(mw) / 1000
		return nil
	}
	return errors.New("no power reading on this GPU")
}

// readSlow fills temperature, clocks, utilisation, memory and clock-event reasons; a field the
// device does not support is asked once and then left NaN.
func (e *entry) readSlow(r *sampler.Reading) {
	d := e.g.dev
	try := func(k int, ret nv.Return, set func()) {
		switch ret {
		case nv.SUCCESS:
			set()
		case nv.ERROR_NOT_SUPPORTED:
			e.unsupported[k] = true
		}
	}
	if !e.unsupported[slowTemperature] {
		v, ret := d.GetTemperature(nv.TEMPERATURE_GPU)
		try(slowTemperature, ret, func() { r.TemperatureC = float64(v) })
	}
	if !e.unsupported[slowSMClock] {
		v, ret := d.GetClockInfo(nv.CLOCK_SM)
		try(slowSMClock, ret, func() { r.SMClockMHz = float64(v) })
	}
	if !e.unsupported[slowMemClock] {
		v, ret := d.GetClockInfo(nv.CLOCK_MEM)
		try(slowMemClock, ret, func() { r.MemoryClockMHz = float64(v) })
	}
	if !e.unsupported[slowUtilization] {
		v, ret := d.GetUtilizationRates()
		try(slowUtilization, ret, func() { r.UtilizationPct = float64(v.Gpu) })
	}
	if !e.unsupported[slowMemory] {
		v, ret := d.GetMemoryInfo()
		try(slowMemory, ret, func() { r.MemoryUsedBytes = float64(v.Used) })
	}
	if !e.unsupported[slowReasons] {
		v, ret := d.GetCurrentClocksEventReasons()
		try(slowReasons, ret, func() { r.ClockEventReasons = v })
	}
}

// checkProcesses lists the compute and graphics processes on every GPU and remembers those
// outside the allowed process trees.
func (s *source) checkProcesses() {
	now := clock.Mono()
	type seen struct {
		e        *entry
		p        nv.ProcessInfo
		graphics bool
	}
	var all []seen
	for _, e := range s.entries {
		if e.g == nil {
			continue
		}
		if ps, ret := e.g.dev.GetComputeRunningProcesses(); ret == nv.SUCCESS {
			for _, p := range ps {
				all = append(all, seen{e, p, false})
			}
		}
		if ps, ret := e.g.dev.GetGraphicsRunningProcesses(); ret == nv.SUCCESS {
			for _, p := range ps {
				all = append(all, seen{e, p, true})
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastProc = now
	for _, x := range all {
		if x.e.foreign[x.p.Pid] != nil {
			continue
		}
		own, visible := s.owners.own(int(x.p.Pid))
		if own {
			continue
		}
		if x.e.foreign == nil {
			x.e.foreign = map[uint32]*foreignProcess{}
		}
		x.e.foreign[x.p.Pid] = &foreignProcess{pid: x.p.Pid, name: s.owners.name(int(x.p.Pid)), visible: visible,
			firstSeen: now, graphics: x.graphics, usedMemory: x.p.UsedGpuMemory}
	}
}

// foreignOf returns the foreign processes seen on e, by pid.
func (s *source) foreignOf(e *entry) []foreignProcess {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]foreignProcess, 0, len(e.foreign))
	for _, p := range e.foreign {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].pid < out[j].pid })
	return out
}

// Close ends the session's use of the GPUs; the library stays loaded for the process.
func (s *source) Close() error { return nil }

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
