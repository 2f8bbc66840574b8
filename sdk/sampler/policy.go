package sampler

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/lemctl/lemctl/sdk"
)

// Policy is a meter's interval rule, which Sessions applies to every start request (Settle).
type Policy struct {
	// DefaultInterval is used when the request names none (0): normally the meter's configured
	// interval.
	DefaultInterval time.Duration
	// MinInterval is the shortest interval the meter samples at; a shorter request is raised to
	// it (finding interval_raised). 0 means no lower bound.
	MinInterval time.Duration
	// MaxInterval is the longest; a longer request is shortened to it (finding
	// interval_shortened). 0 means no upper bound.
	MaxInterval time.Duration
}

// Offer is what a meter offers one session at Start: its domains (its inventory) and interval
// policy as they are now, and how to open a source over the domains a request settles on. A
// meter builds it from one look at its hardware, so Open sees the same domains as the policy.
type Offer struct {
	Domains []sdk.Domain
	Policy  Policy
	// Open opens the session's source over plan.Read, every one of them available. Opened.Domains
	// has one Spec per domain of plan.Read; Opened.Interval is plan.Interval, or shorter where
	// the meter has a rule of its own (rapl's wrap bound), never below Policy.MinInterval.
	Open func(ctx context.Context, plan Plan) (*Opened, error)
}

// Plan is a start request settled against an Offer.
type Plan struct {
	// Request is the start request as received.
	Request sdk.StartRequest
	// Domains are the session's domains in inventory order, each once: the requested ones, or
	// every domain of the inventory when the request names none.
	Domains []sdk.Domain
	// Read are the available domains of Domains, the ones the source reads. The unavailable ones
	// are listed in the session and its measurement with their reason, and never read.
	Read []sdk.Domain
	// Interval is the settled fast interval.
	Interval time.Duration
	// Findings say how the interval was changed (interval_raised, interval_shortened).
	Findings []sdk.Finding
}

// Settle applies the session policy to req:
//   - an interval of 0 is DefaultInterval; a negative one is sdk.ErrInvalidArgument; one
//     outside [MinInterval, MaxInterval] is moved to the bound with an info finding;
//   - an empty domain list measures every available domain of the inventory and lists the
//     unavailable ones (with their reason) unmeasured, so that nothing is silently missing;
//   - a list keeps the named domains (a named unavailable one is listed unmeasured), each once
//     and in inventory order; an id the inventory does not have is sdk.ErrInvalidArgument
//     naming it and the valid ids.
func (p Policy) Settle(req sdk.StartRequest, inventory []sdk.Domain) (Plan, error) {
	plan := Plan{Request: req}
	switch iv := req.Interval; {
	case iv < 0:
		return plan, fmt.Errorf("interval %s: %w: a sampling interval must be positive (0 uses the meter's default, %s)", iv, sdk.ErrInvalidArgument, p.DefaultInterval)
	case iv == 0:
		plan.Interval = p.DefaultInterval
	default:
		plan.Interval = iv
	}
	if plan.Interval <= 0 {
		return plan, fmt.Errorf("sampler: the meter's policy has no default interval (%s)", p.DefaultInterval)
	}
	if p.MaxInterval > 0 && plan.Interval > p.MaxInterval {
		plan.Findings = append(plan.Findings, sdk.Finding{Code: "interval_shortened", Severity: sdk.SeverityInfo,
			Message: fmt.Sprintf("sampling interval shortened from %s to %s, the longest this meter samples at", plan.Interval, p.MaxInterval)})
		plan.Interval = p.MaxInterval
	}
	if plan.Interval < p.MinInterval {
		plan.Findings = append(plan.Findings, sdk.Finding{Code: "interval_raised", Severity: sdk.SeverityInfo,
			Message: fmt.Sprintf("sampling interval raised from %s to %s, the shortest this meter samples at", plan.Interval, p.MinInterval)})
		plan.Interval = p.MinInterval
	}

	want := map[string]bool{}
	for _, id := range req.Domains {
		want[id] = true
	}
	for _, d := range inventory {
		if len(req.Domains) > 0 && !want[d.ID] {
			continue
		}
		delete(want, d.ID)
		plan.Domains = append(plan.Domains, d)
		if d.Available {
			plan.Read = append(plan.Read, d)
		}
	}
	if len(want) > 0 {
		var unknown, valid []string
		for _, id := range req.Domains {
			if want[id] {
				unknown = append(unknown, fmt.Sprintf("%q", id))
				delete(want, id)
			}
		}
		for _, d := range inventory {
			v := d.ID
			if !d.Available {
				v += " (unavailable)"
			}
			valid = append(valid, v)
		}
		if len(valid) == 0 {
			valid = []string{"none"}
		}
		return plan, fmt.Errorf("domain %s: %w: not a domain of this meter (valid: %s)", strings.Join(unknown, ", "), sdk.ErrInvalidArgument, strings.Join(valid, ", "))
	}
	return plan, nil
}
