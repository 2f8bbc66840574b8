// Package units holds the named measurement types every lemctl plugin and the host share, so that
// an energy never travels as a bare number whose unit a reader has to guess.
//
// Energy is an integer count of microjoules and Power an integer count of microwatts, the way
// time.Duration is an integer count of nanoseconds: sums are exact, and the unit is in the type.
package units

import (
	"fmt"
	"math"
	"time"
)

// Energy is an amount of energy in microjoules (µJ). Its zero value is zero energy; a figure that
// was not measured is never an Energy of zero but an absent value in the result.
type Energy uint64

// Common energies.
const (
	Microjoule Energy = 1
	Millijoule Energy = 1000 * Microjoule
	Joule      Energy = 1000 * Millijoule
	Kilojoule  Energy = 1000 * Joule
)

// Joules returns e in joules.
func (e Energy) Joules() float64 { return float64(e) / float64(Joule) }

// Microjoules returns e as a plain count of microjoules.
func (e Energy) Microjoules() uint64 { return uint64(e) }

// String formats e with a unit suited to its size, e.g. "312.5 J".
func (e Energy) String() string {
	switch {
	case e >= Kilojoule:
		return fmt.Sprintf("%.4g kJ", float64(e)/float64(Kilojoule))
	case e >= Joule:
		return fmt.Sprintf("%.4g J", e.Joules())
	case e >= Millijoule:
		return fmt.Sprintf("%.4g mJ", float64(e)/float64(Millijoule))
	default:
		return fmt.Sprintf("%d µJ", uint64(e))
	}
}

// EnergyFromJoules converts joules to an Energy, rounding to the nearest microjoule. Negative and
// NaN inputs give zero: an Energy is never negative.
func EnergyFromJoules(j float64) Energy {
	if !(j > 0) {
		return 0
	}
	return Energy(math.Round(j * float64(Joule)))
}

// Power is a rate of energy in microwatts (µW).
type Power uint64

// Common powers.
const (
	Microwatt Power = 1
	Milliwatt Power = 1000 * Microwatt
	Watt      Power = 1000 * Milliwatt
	Kilowatt  Power = 1000 * Watt
)

// Watts returns p in watts.
func (p Power) Watts() float64 { return float64(p) / float64(Watt) }

// String formats p with a unit suited to its size, e.g. "150 W".
func (p Power) String() string {
	switch {
	case p >= Kilowatt:
		return fmt.Sprintf("%.4g kW", float64(p)/float64(Kilowatt))
	case p >= Watt:
		return fmt.Sprintf("%.4g W", p.Watts())
	case p >= Milliwatt:
		return fmt.Sprintf("%.4g mW", float64(p)/float64(Milliwatt))
	default:
		return fmt.Sprintf("%d µW", uint64(p))
	}
}

// PowerFromWatts converts watts to a Power, rounding to the nearest microwatt. Negative and NaN
// inputs give zero.
func PowerFromWatts(w float64) Power {
	if !(w > 0) {
		return 0
	}
	return Power(math.Round(w * float64(Watt)))
}

// Over returns the energy that power p delivers over d (p × d), rounded to the nearest µJ.
func (p Power) Over(d time.Duration) Energy {
	if d <= 0 {
		return 0
	}
	// µW × ns = 1e-15 J = 1e-9 µJ; use floating point to avoid overflow for long spans.
	return Energy(math.Round(float64(p) * float64(d) / 1e9))
}
