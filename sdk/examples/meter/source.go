package main

import (
	"context"
	"math/big"
	"strings"
	"time"

	"github.com/lemctl/lemctl/sdk/clock"
	"github.com/lemctl/lemctl/sdk/sampler"
	"github.com/lemctl/lemctl/sdk/units"
)

// profile is a domain's scripted power as a function of the absolute monotonic time: levels[0]
// on [0, period), levels[1] on [period, 2·period), … cycling; a single level is constant power.
type profile struct {
	levels []units.Power
	period time.Duration
}

// constant returns a profile of constant power w watts.
func constant(w float64) profile {
	return profile{levels: []units.Power{units.PowerFromWatts(w)}}
}

// at returns the power at monotonic time t (ns).
func (p profile) at(t int64) units.Power {
	if len(p.levels) == 1 {
		return p.levels[0]
	}
	return p.levels[(t/int64(p.period))%int64(len(p.levels))]
}

// max returns the highest level.
func (p profile) max() units.Power {
	var m units.Power
	for _, l := range p.levels {
		m = max(m, l)
	}
	return m
}

// String describes the profile, e.g. "150 W" or "100 W, 250 W every 100ms".
func (p profile) String() string {
	ws := make([]string, len(p.levels))
	for i, l := range p.levels {
		ws[i] = fmtPowerW(l) + " W"
	}
	if len(p.levels) == 1 {
		return ws[0]
	}
	return strings.Join(ws, ", ") + " every " + p.period.String()
}

var nsPerSecond = big.NewInt(int64(time.Second))

// energy returns ∫₀ᵗ P(s) ds in µJ, rounded down: the counter value of a domain with this profile
// at monotonic time t (ns). It is exact (integer µW·ns arithmetic, no overflow for any t), so
// every process that evaluates it at the same t gets the same value.
func (p profile) energy(t int64) uint64 {
	if t <= 0 {
		return 0
	}
	work := new(big.Int) // µW·ns = 1e-9 µJ
	mul := func(pw units.Power, ns int64) *big.Int {
		return new(big.Int).Mul(new(big.Int).SetUint64(uint64(pw)), big.NewInt(ns))
	}
	if len(p.levels) == 1 {
		work = mul(p.levels[0], t)
	} else {
		step := int64(p.period)
		cycle := step * int64(len(p.levels))
		var sum units.Power
		for _, l := range p.levels {
			sum += l
		}
		// Whole cycles, then whole steps of the last cycle, then the part of the current step.
		work.Mul(mul(sum, step), big.NewInt(t/cycle))
		rem := t % cycle
		for i := int64(0); i < rem/step; i++ {
			work.Add(work, mul(p.levels[i], step))
		}
		work.Add(work, mul(p.levels[rem/step], rem%step))
	}
	return work.Quo(work, nsPerSecond).Uint64()
}

// counterAt returns the counter of a domain with profile p at monotonic time t when the counter
// updates every update: the energy up to t rounded down to a multiple of update.
func counterAt(p profile, update time.Duration, t int64) uint64 {
	return p.energy(t - t%int64(update))
}

// sourceDomain is one domain a session reads.
type sourceDomain struct {
	id      string
	profile profile
}

// source reads a session's domains: the counter at the time of the read, as hardware would.
type source struct {
	update  time.Duration
	domains []sourceDomain
	release func() // stops this session's share of the CPU burner; nil when none
}

// Read evaluates every domain's counter at one instant.
func (s *source) Read(ctx context.Context, _ bool) ([]sampler.Reading, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t := clock.Mono()
	out := make([]sampler.Reading, len(s.domains))
	for i, d := range s.domains {
		r := sampler.NewReading(d.id)
		r.MonoNS = t
		r.Counter = counterAt(d.profile, s.update, t)
		r.PowerW = d.profile.at(t).Watts()
		out[i] = r
	}
	return out, nil
}

// Close ends the session's CPU burn.
func (s *source) Close() error {
	if s.release != nil {
		s.release()
		s.release = nil
	}
	return nil
}
