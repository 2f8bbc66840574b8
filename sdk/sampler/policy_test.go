package sampler

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lemctl/lemctl/sdk"
)

func TestPolicySettle(t *testing.T) {
	inv := []sdk.Domain{
		{ID: "a", Available: true},
		{ID: "b", Available: false, Reason: "no counter"},
		{ID: "c", Available: true},
	}
	p := Policy{DefaultInterval: 100 * time.Millisecond, MinInterval: 10 * time.Millisecond, MaxInterval: time.Minute}
	tests := []struct {
		name     string
		req      sdk.StartRequest
		interval time.Duration
		domains  string // the session's domains
		read     string // those the source reads
		finding  string // the code of the one interval finding, if any
		err      error
		errHas   []string // what the error message must name
	}{
		{name: "empty list: every available domain read, the unavailable one listed", req: sdk.StartRequest{},
			interval: 100 * time.Millisecond, domains: "a,b,c", read: "a,c"},
		{name: "a subset in inventory order", req: sdk.StartRequest{Domains: []string{"c", "a"}},
			interval: 100 * time.Millisecond, domains: "a,c", read: "a,c"},
		{name: "an unavailable domain by name is listed, not read", req: sdk.StartRequest{Domains: []string{"b"}},
			interval: 100 * time.Millisecond, domains: "b", read: ""},
		{name: "duplicate ids are one domain", req: sdk.StartRequest{Domains: []string{"c", "c", "a", "c"}},
			interval: 100 * time.Millisecond, domains: "a,c", read: "a,c"},
		{name: "unknown id", req: sdk.StartRequest{Domains: []string{"a", "zz", "yy"}}, err: sdk.ErrInvalidArgument,
			errHas: []string{`"zz"`, `"yy"`, "valid: a, b (unavailable), c"}},
		{name: "negative interval", req: sdk.StartRequest{Interval: -time.Millisecond}, err: sdk.ErrInvalidArgument,
			errHas: []string{"-1ms", "positive"}},
		{name: "zero interval is the default", req: sdk.StartRequest{Interval: 0},
			interval: 100 * time.Millisecond, domains: "a,b,c", read: "a,c"},
		{name: "an interval inside the bounds is kept", req: sdk.StartRequest{Interval: 25 * time.Millisecond},
			interval: 25 * time.Millisecond, domains: "a,b,c", read: "a,c"},
		{name: "too small is raised to the minimum", req: sdk.StartRequest{Interval: time.Millisecond},
			interval: 10 * time.Millisecond, domains: "a,b,c", read: "a,c", finding: "interval_raised"},
		{name: "too large is shortened to the maximum", req: sdk.StartRequest{Interval: time.Hour},
			interval: time.Minute, domains: "a,b,c", read: "a,c", finding: "interval_shortened"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := p.Settle(tc.req, inv)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Settle: %v, want %v", err, tc.err)
				}
				for _, s := range tc.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not name %s", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if plan.Interval != tc.interval {
				t.Errorf("interval %v, want %v", plan.Interval, tc.interval)
			}
			if got := ids(plan.Domains); got != tc.domains {
				t.Errorf("domains %s, want %s", got, tc.domains)
			}
			if got := ids(plan.Read); got != tc.read {
				t.Errorf("read %s, want %s", got, tc.read)
			}
			var codes []string
			for _, f := range plan.Findings {
				codes = append(codes, f.Code)
				if f.Severity != sdk.SeverityInfo {
					t.Errorf("finding %+v is not info", f)
				}
			}
			if strings.Join(codes, ",") != tc.finding {
				t.Errorf("findings %v, want %q", codes, tc.finding)
			}
		})
	}
}

func TestPolicyWithoutDefaultIsAnError(t *testing.T) {
	if _, err := (Policy{}).Settle(sdk.StartRequest{}, nil); err == nil {
		t.Fatal("a policy without a default interval settled a request naming none")
	}
	if _, err := (Policy{}).Settle(sdk.StartRequest{Domains: []string{"x"}, Interval: time.Second}, nil); !errors.Is(err, sdk.ErrInvalidArgument) ||
		!strings.Contains(err.Error(), "valid: none") {
		t.Fatalf("unknown domain of an empty inventory: %v", err)
	}
}

// TestSessionListsUnavailableDomains: the opener sees only the available domains; the session
// and its measurement list the unavailable one with its reason, with no samples.
func TestSessionListsUnavailableDomains(t *testing.T) {
	src := &rampSource{t0: 1}
	ok := sdk.Domain{ID: "d", Kind: sdk.DomainGPU, Method: sdk.MethodCounter, Available: true}
	off := sdk.Domain{ID: "a-off", Kind: sdk.DomainGPU, Method: sdk.MethodCounter, Reason: "no energy counter"}
	var opened []string
	s := &Sessions{Offer: func(context.Context) (*Offer, error) {
		return &Offer{Domains: []sdk.Domain{off, ok}, Policy: Policy{DefaultInterval: 10 * time.Millisecond, MinInterval: 5 * time.Millisecond},
			Open: func(_ context.Context, p Plan) (*Opened, error) {
				opened = append(opened, ids(p.Read))
				return &Opened{Source: src, Interval: p.Interval, Domains: []Spec{{Domain: ok}}}, nil
			}}, nil
	}}
	ctx := context.Background()
	sess, err := s.Start(ctx, sdk.StartRequest{Interval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if ids(sess.Domains) != "a-off,d" || sess.Interval != 5*time.Millisecond {
		t.Errorf("session domains %s interval %v, want a-off,d at 5ms", ids(sess.Domains), sess.Interval)
	}
	time.Sleep(30 * time.Millisecond)
	m, err := s.Stop(ctx, sess.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(opened) != 1 || opened[0] != "d" {
		t.Errorf("opener saw %v, want [d]", opened)
	}
	if len(m.Domains) != 2 || m.Domains[0].Domain.Available || m.Domains[0].Domain.Reason != "no energy counter" ||
		len(m.Domains[0].Samples) != 0 || !m.Domains[1].Domain.Available {
		t.Errorf("measurement domains %+v", m.Domains)
	}
	if len(m.Findings) != 1 || m.Findings[0].Code != "interval_raised" {
		t.Errorf("findings %+v, want interval_raised", m.Findings)
	}
	if _, err := s.Start(ctx, sdk.StartRequest{Domains: []string{"nope"}}); !errors.Is(err, sdk.ErrInvalidArgument) {
		t.Errorf("Start of an unknown domain: %v", err)
	}
	if len(opened) != 1 {
		t.Error("the opener was called for a refused request")
	}
}

func ids(doms []sdk.Domain) string {
	var out []string
	for _, d := range doms {
		out = append(out, d.ID)
	}
	return strings.Join(out, ",")
}
