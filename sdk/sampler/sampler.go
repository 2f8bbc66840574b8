// Package sampler is the measurement loop every energy plugin would otherwise write again: it
// polls a Source at a fixed interval, turns raw counters into wrap- and reset-corrected
// cumulative energy (sdk/counter), integrates power for domains that have no counter, keeps the
// timeline, takes a reading at every Mark, and reports health findings (counter_reset,
// counter_stuck). A meter plugin implements Inventory, Environment and a Source, and gets
// Start, Mark and Stop from Sessions.
//
// Sessions also applies the one session policy every meter shares (Policy.Settle): a start
// request's interval of 0 is the meter's default, a negative one is an invalid argument, one
// outside the meter's bounds is moved to the bound with an info finding (interval_raised,
// interval_shortened); an empty domain list measures every available domain and lists the
// unavailable ones unmeasured with their reason; a list keeps the named domains, each once, in
// inventory order, and an unknown id is an invalid argument naming the valid ones. The meter's
// Offer.Open only ever sees the available domains it must read and the settled interval.
//
// It never invents energy: a domain whose reads fail is reported unavailable with the error.
package sampler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/clock"
	"github.com/lemctl/lemctl/sdk/counter"
	"github.com/lemctl/lemctl/sdk/units"
)

// Reading is one domain's raw values at one instant: the raw counter, and the timeline fields
// of sdk.Sample. Float fields are NaN when not read; use NewReading to get one with every field
// unset. Sample.MonoNS is when the value was read (0 lets the sampler use the time the Read call
// returned); Sample.Energy is ignored: the sampler computes it.
type Reading struct {
	Domain string
	// Counter is the raw energy counter in µJ (counter-method domains).
	Counter uint64
	// Err, when set, says the domain could not be read this time.
	Err error
	sdk.Sample
}

// NewReading returns a reading of domain with every optional field NaN.
func NewReading(domain string) Reading {
	nan := math.NaN()
	return Reading{Domain: domain, Sample: sdk.Sample{PowerW: nan, AveragePowerW: nan, TemperatureC: nan,
		SMClockMHz: nan, MemoryClockMHz: nan, UtilizationPct: nan, MemoryUsedBytes: nan}}
}

// Source reads the domains of one session.
type Source interface {
	// Read returns one Reading per domain it can read. slow asks for the slow fields too
	// (temperature, clocks, utilisation, memory), which are due at most every SlowInterval.
	Read(ctx context.Context, slow bool) ([]Reading, error)
	// Close releases the source at the end of the session.
	Close() error
}

// Spec is a domain in a session, with what its counter needs.
type Spec struct {
	sdk.Domain
	Counter counter.Config
	// Cumulative, for an estimate domain, says its readings are a cumulative counter in
	// Reading.Counter (a model that accumulates, such as CPU time × watts per core) rather than
	// a power to integrate. Counter and power-integration domains ignore it.
	Cumulative bool
}

// Opened is what a meter returns when a session starts.
type Opened struct {
	Source  Source
	Domains []Spec
	// Interval is the interval to use: the plan's, or shorter where the meter has a bound of its
	// own.
	Interval time.Duration
	// SlowInterval is how often slow fields are read; 0 means max(Interval, 100 ms).
	SlowInterval time.Duration
	// Findings are reported with the measurement (e.g. a domain skipped at start).
	Findings []sdk.Finding
	// Finish, when set, runs at Stop on the assembled measurement, after the last reading and
	// Source.Close: a meter adds what only it can judge (nvml's GPU health). A finding it adds to
	// a domain's Health belongs in the measurement's Findings too.
	Finish func(m *sdk.Measurement)
}

// Sessions implements the Start, Mark and Stop methods of sdk.Meter on top of an Offer. The zero
// value is not usable: set Offer.
type Sessions struct {
	// Offer is called at every Start: the meter's domains, policy and source opener as they are
	// now.
	Offer func(ctx context.Context) (*Offer, error)
	// StuckAfter is how long a counter may stay unchanged before it is counter_stuck; 0 means
	// max(1 s, 10 × the domain's update period).
	StuckAfter time.Duration

	mu       sync.Mutex
	sessions map[string]*session
	next     int
}

// Start opens a session and takes its first reading.
func (s *Sessions) Start(ctx context.Context, req sdk.StartRequest) (*sdk.Session, error) {
	if s.Offer == nil {
		return nil, fmt.Errorf("sampler: Sessions.Offer is nil")
	}
	offer, err := s.Offer(ctx)
	if err != nil {
		return nil, err
	}
	if offer.Open == nil {
		return nil, fmt.Errorf("sampler: the meter's Offer has no Open")
	}
	plan, err := offer.Policy.Settle(req, offer.Domains)
	if err != nil {
		return nil, err
	}
	opened, err := offer.Open(ctx, plan)
	if err != nil {
		return nil, err
	}
	if opened.Interval <= 0 {
		return nil, fmt.Errorf("sampler: opener returned interval %v", opened.Interval)
	}
	if opened.SlowInterval <= 0 {
		opened.SlowInterval = max(opened.Interval, 100*time.Millisecond)
	}
	se := newSession(plan, opened, s.StuckAfter)
	s.mu.Lock()
	if s.sessions == nil {
		s.sessions = map[string]*session{}
	}
	s.next++
	id := fmt.Sprintf("s%d", s.next)
	s.sessions[id] = se
	s.mu.Unlock()
	se.start()
	doms := make([]sdk.Domain, len(se.order))
	for i, id := range se.order {
		doms[i] = se.domains[id].spec.Domain
	}
	return &sdk.Session{ID: id, StartMonoNS: se.startNS, Interval: opened.Interval, Domains: doms}, nil
}

// Mark takes a reading now and records it under label.
func (s *Sessions) Mark(ctx context.Context, id, label string) (int64, error) {
	se, err := s.get(id)
	if err != nil {
		return 0, err
	}
	return se.mark(ctx, label), nil
}

// Stop ends the session with a last reading and returns the measurement.
func (s *Sessions) Stop(ctx context.Context, id string) (*sdk.Measurement, error) {
	s.mu.Lock()
	se, ok := s.sessions[id]
	delete(s.sessions, id)
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("session %q: %w (never started, or already stopped)", id, sdk.ErrNotFound)
	}
	m := se.stop(ctx)
	m.Session = id
	return m, nil
}

// Open reports how many sessions are open.
func (s *Sessions) OpenSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

func (s *Sessions) get(id string) (*session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	se, ok := s.sessions[id]
	if !ok {
		return nil, fmt.Errorf("session %q: %w (never started, or already stopped)", id, sdk.ErrNotFound)
	}
	return se, nil
}

type domainState struct {
	spec      Spec
	acc       *counter.Accumulator
	integral  float64 // µJ, for power integration
	lastPower float64
	lastNS    int64
	samples   []sdk.Sample
	failed    error // last read error
	okReads   int
	longest   time.Duration // longest unchanged stretch of the counter
	health    []sdk.Finding // findings raised while sampling (counter resets)
}

type session struct {
	opened     *Opened
	stuckAfter time.Duration
	mu         sync.Mutex // serialises reads
	domains    map[string]*domainState
	order      []string
	marks      []sdk.Mark
	findings   []sdk.Finding
	startNS    int64
	lastSlowNS int64
	cpuStart   int64
	ticker     *fdTicker // nil where timerfd is refused: the loop uses a time.Ticker
	// ticks counts the interval readings taken, missed the ticks that came while the sampling
	// thread was held up (machine load) and were folded into the next reading.
	ticks, missed uint64
	stopLoop      chan struct{}
	loopDone      chan struct{}
}

// newSession lists the plan's domains in its order: the opened ones with their specs, the
// unavailable ones unread with their reason.
func newSession(plan Plan, o *Opened, stuckAfter time.Duration) *session {
	se := &session{opened: o, stuckAfter: stuckAfter, domains: map[string]*domainState{},
		stopLoop: make(chan struct{}), loopDone: make(chan struct{}),
		findings: append(append([]sdk.Finding(nil), plan.Findings...), o.Findings...)}
	add := func(d Spec, failed error) {
		if _, dup := se.domains[d.ID]; dup {
			return
		}
		se.domains[d.ID] = &domainState{spec: d, acc: counter.New(d.Counter), lastPower: math.NaN(), failed: failed}
		se.order = append(se.order, d.ID)
	}
	specs := map[string]Spec{}
	for _, d := range o.Domains {
		specs[d.ID] = d
	}
	for _, d := range plan.Domains {
		switch sp, ok := specs[d.ID]; {
		case ok:
			add(sp, nil)
		case !d.Available:
			add(Spec{Domain: d}, errors.New(d.Reason))
		default:
			add(Spec{Domain: d}, errors.New("the meter did not open this domain"))
		}
	}
	for _, d := range o.Domains {
		add(d, nil)
	}
	return se
}

func (se *session) start() {
	se.cpuStart = processCPUNS()
	se.read(context.Background(), true)
	se.startNS = se.firstSampleNS()
	se.ticker, _ = newFDTicker(se.opened.Interval)
	go se.loop()
}

func (se *session) firstSampleNS() int64 {
	for _, id := range se.order {
		if d := se.domains[id]; len(d.samples) > 0 {
			return d.samples[0].MonoNS
		}
	}
	return clock.Mono()
}

// loop reads every interval until stop: on the timerfd ticker, or on a time.Ticker where the
// timerfd could not be made or fails.
func (se *session) loop() {
	defer close(se.loopDone)
	if t := se.ticker; t != nil {
		defer t.Close()
		for {
			n, err := t.Wait()
			if err == errTickerStopped {
				return
			}
			if err != nil {
				break
			}
			se.missed += n - 1
			se.tick()
		}
	}
	t := time.NewTicker(se.opened.Interval)
	defer t.Stop()
	start := clock.Mono()
	for {
		select {
		case <-se.stopLoop:
			return
		case <-t.C:
			// A time.Ticker drops the ticks its reader missed: count them from the grid.
			due := uint64((clock.Mono() - start) / int64(se.opened.Interval))
			se.missed = max(se.missed, due-min(due, se.ticks+1))
			se.tick()
		}
	}
}

// missedTicks is the finding for ticks the sampling thread missed, or nil.
func (se *session) missedTicks() []sdk.Finding {
	if se.missed == 0 {
		return nil
	}
	total := se.ticks + se.missed
	return []sdk.Finding{{Code: "sampler_ticks_missed", Severity: sdk.SeverityInfo,
		Message: fmt.Sprintf("%d of %d sampling ticks (every %v) came while the sampling thread was held up and were folded into the next reading (%.0f %%): readings are further apart there",
			se.missed, total, se.opened.Interval, 100*float64(se.missed)/float64(total)),
		Advice: "a busy machine delays the sampler; energy between readings is still counted, but the timeline is coarser"}}
}

// tick takes the interval's reading, with the slow fields when their interval has passed.
func (se *session) tick() {
	se.ticks++
	now := clock.Mono()
	se.read(context.Background(), time.Duration(now-se.lastSlowNS) >= se.opened.SlowInterval)
}

func (se *session) mark(ctx context.Context, label string) int64 {
	ns := se.read(ctx, false)
	se.mu.Lock()
	se.marks = append(se.marks, sdk.Mark{Label: label, MonoNS: ns})
	se.mu.Unlock()
	return ns
}

// read takes one reading of every domain and returns its time.
func (se *session) read(ctx context.Context, slow bool) int64 {
	se.mu.Lock()
	defer se.mu.Unlock()
	readStartNS := clock.Mono() // every reading of this batch lies between it and its stamp
	readings, err := se.opened.Source.Read(ctx, slow)
	now := clock.Mono()
	if slow {
		se.lastSlowNS = now
	}
	if err != nil {
		for _, id := range se.order {
			se.domains[id].failed = err
		}
		return now
	}
	for _, r := range readings {
		d, ok := se.domains[r.Domain]
		if !ok {
			continue
		}
		if r.Err != nil {
			d.failed = r.Err
			continue
		}
		ns := r.MonoNS
		if ns == 0 {
			ns = now
		}
		d.okReads++
		sample := r.Sample
		sample.MonoNS = ns
		switch {
		case d.spec.Method == sdk.MethodPowerIntegration || d.spec.Method == sdk.MethodEstimate && !d.spec.Cumulative:
			p := r.PowerW
			if math.IsNaN(p) {
				p = r.AveragePowerW
			}
			if !math.IsNaN(p) && !math.IsNaN(d.lastPower) && ns > d.lastNS {
				// Trapezoid: W × ns = 1e-9 J = 1e-3 µJ.
				d.integral += (p + d.lastPower) / 2 * float64(ns-d.lastNS) / 1e3
			}
			if !math.IsNaN(p) {
				d.lastPower, d.lastNS = p, ns
			}
			sample.Energy = units.Energy(math.Round(d.integral))
		default:
			kind := d.acc.AddRead(readStartNS, ns, r.Counter)
			if kind == counter.Reset {
				last := d.acc.Last()
				d.health = append(d.health, sdk.Finding{Code: "counter_reset", Severity: sdk.SeverityError,
					Message: last.Message, Advice: "repeat the measurement; a driver reload or counter reset happened during it",
					Domain: d.spec.ID, MonoNS: ns})
			}
			if u := d.acc.Unchanged(); u > d.longest {
				d.longest = u
			}
			sample.Energy = d.acc.Total()
		}
		d.samples = append(d.samples, sample)
	}
	return now
}

func (se *session) stop(ctx context.Context) *sdk.Measurement {
	close(se.stopLoop)
	if se.ticker != nil {
		se.ticker.Stop()
	}
	<-se.loopDone
	stopNS := se.read(ctx, true)
	_ = se.opened.Source.Close()
	se.mu.Lock()
	defer se.mu.Unlock()
	m := &sdk.Measurement{StartMonoNS: se.startNS, StopMonoNS: stopNS, Marks: se.marks,
		Findings: append(se.findings, se.missedTicks()...), SamplerCPUNS: processCPUNS() - se.cpuStart}
	for _, id := range se.order {
		d := se.domains[id]
		// A domain's health is complete on its own; the measurement's findings repeat it.
		de := sdk.DomainEnergy{Domain: d.spec.Domain, Samples: d.samples, Health: d.health}
		if d.okReads < 2 {
			de.Domain.Available = false
			reason := "fewer than two successful reads in the session"
			if d.failed != nil {
				reason = d.failed.Error()
			}
			de.Domain.Reason = reason
			de.Samples = nil
		} else {
			de.Energy = d.samples[len(d.samples)-1].Energy
			if d.spec.Method == sdk.MethodCounter {
				de.CounterUpdates = d.acc.Updates()
				de.Health = append(de.Health, se.stuck(d, stopNS)...)
			} else if d.spec.Cumulative {
				de.CounterUpdates = d.acc.Updates()
			} else {
				de.CounterUpdates = d.okReads - 1
			}
			if d.failed != nil {
				de.Health = append(de.Health, sdk.Finding{Code: "read_errors", Severity: sdk.SeverityWarning,
					Domain: d.spec.ID, Message: "some reads failed: " + d.failed.Error()})
			}
		}
		m.Findings = append(m.Findings, de.Health...)
		m.Domains = append(m.Domains, de)
	}
	if se.opened.Finish != nil {
		se.opened.Finish(m)
	}
	return m
}

func (se *session) stuck(d *domainState, stopNS int64) []sdk.Finding {
	limit := se.stuckAfter
	if limit <= 0 {
		limit = max(time.Second, 10*d.spec.UpdatePeriod)
	}
	if d.longest < limit {
		return nil
	}
	sev := sdk.SeverityWarning
	msg := fmt.Sprintf("counter did not change for %s (limit %s)", d.longest.Round(time.Millisecond), limit)
	if d.acc.Updates() == 0 {
		sev = sdk.SeverityError
		msg = fmt.Sprintf("counter never changed during the %s session", time.Duration(stopNS-se.startNS).Round(time.Millisecond))
	}
	return []sdk.Finding{{Code: "counter_stuck", Severity: sev, Message: msg, Domain: d.spec.ID,
		Advice: "the counter is not updating; the energy of this domain is not trustworthy"}}
}

// processCPUNS returns this process's user+system CPU time in nanoseconds.
func processCPUNS() int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
