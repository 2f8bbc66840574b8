// Package energy turns meter measurements into the energy figures of a result: per-domain total
// over the measured window (the cumulative counter interpolated at the window's edges, never
// integrated watts unless the domain's method is power_integration), idle power from the baseline,
// static (idle power × window) and dynamic (total − static, floored at 0 with a finding) energy,
// energy per phase (prefill/decode) from the batch intervals, and the meter-independent validity
// findings of docs/methodology.md ("Energy", "Validity").
//
// It never invents a number: a domain that was not measured has null figures and a reason, and
// energy.total_j counts the widest set of measured domains that do not overlap (CountedSet: a
// node domain contains the host's package, DRAM and GPU domains; a domain never adds to one that
// contains it).
package energy
