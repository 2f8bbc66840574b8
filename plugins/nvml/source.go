package nvml

import (
	"context"
	"errors"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/clock"
	"github.com/lemctl/lemctl/sdk/sampler"
)

// ProcessInterval is how often a session lists the processes running on its GPUs (besides at its
// start and its stop): process listing is the most expensive NVML read, and a process that uses a
// GPU for less than a second hardly moves its energy.
const ProcessInterval = time.Second

// entry is one domain of a session.
type entry struct {
	id     string
	g      *gpu  // nil for a domain that is unavailable from the start
	reason error // why unavailable

	// unsupported are the slow fields the GPU said it does not support: asked only once.
	unsupported SlowSet

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
			mj, err := g.drv.Energy(g.index)
			r.MonoNS = clock.Mono()
			if err != nil {
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
	g := e.g
	switch g.power {
	case powerFields:
		p, err := g.drv.PowerFields(g.index, g.hasInstant, g.hasAvgFld)
		if err != nil {
			return err
		}
		r.PowerW, r.AveragePowerW = p.InstantW, p.AverageW
		firstErr := p.InstantErr
		if firstErr == nil {
			firstErr = p.AverageErr
		}
		if math.IsNaN(r.PowerW) && math.IsNaN(r.AveragePowerW) {
			if firstErr == nil {
				firstErr = errors.New("nvmlDeviceGetFieldValues: no power value")
			}
			return firstErr
		}
		if g.confidence == sdk.ConfidenceMeasured && g.method == sdk.MethodPowerIntegration && math.IsNaN(r.PowerW) {
			// Never integrate the moving average under a "measured" label.
			return firstErr
		}
		return nil
	case powerAverage:
		w, err := g.drv.PowerUsage(g.index)
		if err != nil {
			return err
		}
		r.AveragePowerW = w
		return nil
	}
	return errors.New("no power reading on this GPU")
}

// readSlow fills temperature, clocks, utilisation, memory and clock-event reasons; a field the
// device does not support is asked once and then left NaN.
func (e *entry) readSlow(r *sampler.Reading) {
	v := e.g.drv.Slow(e.g.index, e.unsupported)
	e.unsupported |= v.Unsupported
	r.TemperatureC, r.SMClockMHz, r.MemoryClockMHz = v.TemperatureC, v.SMClockMHz, v.MemClockMHz
	r.UtilizationPct, r.MemoryUsedBytes = v.UtilizationPct, v.MemoryUsedBytes
	if v.ReasonsRead {
		r.ClockEventReasons, r.ReasonsRead = v.ClockEventReasons, true
	}
}

// checkProcesses lists the compute and graphics processes on every GPU and remembers those
// outside the allowed process trees.
func (s *source) checkProcesses() {
	now := clock.Mono()
	type seen struct {
		e *entry
		p Process
	}
	var all []seen
	for _, e := range s.entries {
		if e.g == nil {
			continue
		}
		for _, p := range e.g.drv.Processes(e.g.index) {
			all = append(all, seen{e, p})
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastProc = now
	for _, x := range all {
		if x.e.foreign[x.p.PID] != nil {
			continue
		}
		own, visible := s.owners.own(int(x.p.PID))
		if own {
			continue
		}
		if x.e.foreign == nil {
			x.e.foreign = map[uint32]*foreignProcess{}
		}
		x.e.foreign[x.p.PID] = &foreignProcess{pid: x.p.PID, name: s.owners.name(int(x.p.PID)), visible: visible,
			firstSeen: now, graphics: x.p.Graphics, usedMemory: x.p.UsedGPUMemory}
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
