// Package counter turns raw readings of a hardware energy counter into a cumulative energy that
// is correct across wraps and never silently wrong across resets, per docs/methodology.md:
//
//   - a counter that decreases and has a known range wrapped: add the range once;
//   - a delta larger than max power × elapsed (plus a small slack) is a reset, not a wrap (and so
//     are several wraps between two reads, which polling at least twice per wrap period rules
//     out): the interval is not counted, and the reset is reported. Elapsed is the longest time
//     the delta can span: from the start of the read that first showed the previous value to the
//     end of this read, so a counter that held its value for a while (coarse or irregular
//     updates) or a reader descheduled between a read and its timestamp does not turn a
//     legitimate catch-up into a reset;
//   - a counter without a range (NVML's 64-bit mJ counter) that goes backwards means the driver
//     reloaded: flagged as a reset, never subtracted through.
//
// The accumulator is not safe for concurrent use; a meter's sampler owns one per domain.
package counter

import (
	"fmt"
	"time"

	"github.com/lemctl/lemctl/sdk/units"
)

// Config describes a counter.
type Config struct {
	// Range is the value at which the counter wraps to zero (RAPL max_energy_range_uj + 1 µJ is
	// the modulus; pass max_energy_range_uj and the accumulator adds one unit); 0 means the
	// counter never wraps.
	Range units.Energy
	// MaxPower bounds the plausible power of the domain; a delta above MaxPower × elapsed ×
	// (1 + Slack) is a reset. 0 disables the check (not recommended for wrapping counters).
	MaxPower units.Power
	// Slack is the relative tolerance on the MaxPower bound; 0 means 0.5 (50 %), generous enough
	// for turbo excursions and timestamp jitter.
	Slack float64
	// MinElapsed is the least elapsed time the bound is computed over, to absorb counter update
	// granularity (a counter updated every 10 ms may show 10 ms of energy after 1 ms); 0 means 10 ms.
	MinElapsed time.Duration
}

// EventKind says what happened between two reads.
type EventKind int

const (
	// Normal: the counter advanced (or stayed) as expected.
	Normal EventKind = iota
	// Wrap: the counter passed its range once; the range was added.
	Wrap
	// Reset: the counter jumped (backwards without a range, or by more than max power allows);
	// the interval was not counted.
	Reset
)

func (k EventKind) String() string {
	switch k {
	case Normal:
		return "normal"
	case Wrap:
		return "wrap"
	case Reset:
		return "reset"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event describes one reset or wrap.
type Event struct {
	Kind   EventKind
	MonoNS int64
	Prev   uint64 // raw value before
	Raw    uint64 // raw value after
	// Message explains a reset for a health finding.
	Message string
}

// Accumulator accumulates one counter.
type Accumulator struct {
	cfg      Config
	started  bool
	prevRaw  uint64
	prevMono int64
	total    units.Energy
	updates  int
	events   []Event
	// lastChangeNS is when the raw value last changed.
	lastChangeNS int64
	// sinceNS is the start of the read that first showed prevRaw: the next delta can span energy
	// from there on.
	sinceNS int64
}

// New returns an accumulator for a counter described by cfg.
func New(cfg Config) *Accumulator {
	if cfg.Slack <= 0 {
		cfg.Slack = 0.5
	}
	if cfg.MinElapsed <= 0 {
		cfg.MinElapsed = 10 * time.Millisecond
	}
	return &Accumulator{cfg: cfg}
}

// Add feeds a raw reading taken at monoNS and returns what kind of step it was. The first reading
// only sets the origin.
func (a *Accumulator) Add(monoNS int64, raw uint64) EventKind { return a.AddRead(monoNS, monoNS, raw) }

// AddRead is Add for a reading known only to lie between startNS (before the read began) and
// monoNS (after it ended), as a poller sees it: the reset bound then covers any delay between the
// two.
func (a *Accumulator) AddRead(startNS, monoNS int64, raw uint64) EventKind {
	startNS = min(startNS, monoNS)
	if !a.started {
		a.started = true
		a.prevRaw, a.prevMono, a.lastChangeNS, a.sinceNS = raw, monoNS, monoNS, startNS
		return Normal
	}
	prev := a.prevRaw
	span := time.Duration(monoNS - a.sinceNS) // the longest time this delta can cover
	a.prevRaw, a.prevMono = raw, monoNS
	if raw != prev {
		a.updates++
		a.lastChangeNS, a.sinceNS = monoNS, startNS
	}

	var delta uint64
	kind := Normal
	switch {
	case raw >= prev:
		delta = raw - prev
	case a.cfg.Range > 0:
		// One wrap: the counter went from prev up to Range, then from 0 to raw.
		modulus := uint64(a.cfg.Range) + 1
		if prev >= modulus { // a reading above the declared range: the range is wrong
			return a.reset(monoNS, prev, raw, span, fmt.Sprintf("counter read %d above its range %d", prev, uint64(a.cfg.Range)))
		}
		delta = modulus - prev + raw
		kind = Wrap
	default:
		return a.reset(monoNS, prev, raw, span, fmt.Sprintf("counter went backwards from %d to %d (driver reload or reset); the interval is not counted", prev, raw))
	}

	if a.cfg.MaxPower > 0 {
		bound := span
		if bound < a.cfg.MinElapsed {
			bound = a.cfg.MinElapsed
		}
		limit := float64(a.cfg.MaxPower.Over(bound)) * (1 + a.cfg.Slack)
		if float64(delta) > limit {
			what := "advanced"
			if kind == Wrap {
				what = "wrapped and advanced"
			}
			return a.reset(monoNS, prev, raw, span, fmt.Sprintf("counter %s by %s in %s, more than max power %s allows: a reset, not counted", what, units.Energy(delta), span, a.cfg.MaxPower))
		}
	}
	a.total += units.Energy(delta)
	if kind == Wrap {
		a.events = append(a.events, Event{Kind: Wrap, MonoNS: monoNS, Prev: prev, Raw: raw})
	}
	return kind
}

// reset records a reset over an interval of at most span. With a max power, the message bounds
// the energy left uncounted, the error the reset adds to the total.
func (a *Accumulator) reset(monoNS int64, prev, raw uint64, span time.Duration, msg string) EventKind {
	if a.cfg.MaxPower > 0 {
		span = max(span, a.cfg.MinElapsed)
		msg += fmt.Sprintf("; the total lacks at most %s (max power %s × %s)", a.cfg.MaxPower.Over(span), a.cfg.MaxPower, span)
	}
	a.events = append(a.events, Event{Kind: Reset, MonoNS: monoNS, Prev: prev, Raw: raw, Message: msg})
	return Reset
}

// Total returns the energy accumulated since the first reading.
func (a *Accumulator) Total() units.Energy { return a.total }

// Updates returns how many reads saw the raw value change.
func (a *Accumulator) Updates() int { return a.updates }

// Events returns the wraps and resets seen, in order.
func (a *Accumulator) Events() []Event { return append([]Event(nil), a.events...) }

// Last returns the latest event; it must not be called before the first one.
func (a *Accumulator) Last() Event { return a.events[len(a.events)-1] }

// Resets returns the resets seen.
func (a *Accumulator) Resets() []Event {
	var out []Event
	for _, e := range a.events {
		if e.Kind == Reset {
			out = append(out, e)
		}
	}
	return out
}

// Unchanged returns how long the raw value has stayed the same as of the last reading.
func (a *Accumulator) Unchanged() time.Duration { return time.Duration(a.prevMono - a.lastChangeNS) }

// WrapPeriod returns how long the counter takes to wrap at max power: the longest safe poll
// interval is half of it. It returns 0 when the counter never wraps or max power is unknown.
func WrapPeriod(rng units.Energy, maxPower units.Power) time.Duration {
	if rng == 0 || maxPower == 0 {
		return 0
	}
	return time.Duration(float64(rng) / float64(maxPower) * float64(time.Second))
}

// PollBound returns the longest poll interval that still reads the counter at least twice per
// wrap period (0 when unbounded).
func PollBound(rng units.Energy, maxPower units.Power) time.Duration {
	return WrapPeriod(rng, maxPower) / 2
}
