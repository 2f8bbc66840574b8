package discovery

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/sdk"
)

// Refused is a plugin that an automatic meter selection left out, and why.
type Refused struct {
	Name   string
	Path   string
	Reason string
	// Unavailable is true when the meter itself said it has nothing to measure on this hardware
	// (its Inventory returned sdk.ErrUnavailable: no NVML library, no powercap): a quiet note.
	// Otherwise the meter is installed but unusable (refused by its lock, crashed, wrote to
	// stdout, hung in the handshake, failed its Inventory) and the user must be warned.
	Unavailable bool
	// KindUnknown is true for a candidate that never answered, so it may not be a meter at all.
	KindUnknown bool
	// Estimate is true for a meter that only estimates, left out because a real meter measures
	// this host: a quiet note, like Unavailable.
	Estimate bool
}

// AutoMeters selects the energy meters for `meters = "auto"`: every selected energy plugin that
// starts, accepts its table (tables[name], empty when absent) and answers Inventory. The meters
// are tried in parallel, each in the Session's one process of it, which stays for the
// inventory and is dropped with the Session. It returns
// the names of those meters, sorted, and every meter it left out with the reason. A candidate
// that failed discovery and has no usable plugin of its name is reported too when it is, or may
// be, an energy plugin (it never answered, so its kinds are unknown); a plugin whose kinds are
// known and exclude energy is not a meter and is never reported.
func (s *Session) AutoMeters(ctx context.Context, tables map[string]map[string]any) (names []string, refused []Refused) {
	cat := s.cat
	seen := map[string]bool{}
	for _, c := range cat.Candidates {
		if c.Err == nil || seen[c.Name] || cat.selected(c.Name) != nil {
			continue
		}
		if len(c.Info.Kinds) > 0 && !c.Info.Serves(sdk.KindEnergy) {
			continue
		}
		seen[c.Name] = true
		refused = append(refused, Refused{Name: c.Name, Path: c.Path, Reason: c.Reason, KindUnknown: len(c.Info.Kinds) == 0})
	}
	meters := cat.ByKind(sdk.KindEnergy)
	errs := make([]error, len(meters))
	invs := make([][]sdk.Domain, len(meters))
	var wg sync.WaitGroup
	for i, p := range meters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			invs[i], errs[i] = s.tryMeter(ctx, p.Name, tables[p.Name])
		}()
	}
	wg.Wait()
	answered := map[string][]sdk.Domain{}
	for i, p := range meters {
		if err := errs[i]; err != nil {
			refused = append(refused, Refused{Name: p.Name, Path: p.Path, Reason: err.Error(), Unavailable: errors.Is(err, sdk.ErrUnavailable)})
			continue
		}
		answered[p.Name] = invs[i]
	}
	for i, p := range meters {
		inv, ok := answered[p.Name]
		if !ok {
			continue
		}
		if real := realMeterBeside(p.Name, inv, answered); real != "" {
			refused = append(refused, Refused{Name: p.Name, Path: meters[i].Path, Estimate: true,
				Reason: "it only estimates energy, and meter " + real + " measures this host (\"auto\" chooses an estimate only where no meter can measure; list it in energy.meters to run it anyway)"})
			continue
		}
		names = append(names, p.Name)
	}
	return names, refused
}

// AutoMeters is Session.AutoMeters in a Session of its own, closed before it returns.
func (cat *Catalog) AutoMeters(ctx context.Context, tables map[string]map[string]any) (names []string, refused []Refused) {
	s := cat.NewSession()
	defer s.Close()
	return s.AutoMeters(ctx, tables)
}

// tryMeter opens the energy plugin name in the Session with table and asks its Inventory.
func (s *Session) tryMeter(ctx context.Context, name string, table map[string]any) ([]sdk.Domain, error) {
	c, err := s.Open(ctx, name, sdk.KindEnergy, table)
	if err != nil {
		return nil, err
	}
	inv, err := c.Meter().Inventory(ctx)
	if err != nil {
		// gRPC reports a plugin that died as Unavailable too: only one still answering said so.
		if errors.Is(err, sdk.ErrUnavailable) {
			if _, again := c.Configure(ctx, table); again != nil {
				return nil, fmt.Errorf("inventory: %v; the plugin stopped answering (%v)", err, again)
			}
		}
		return nil, fmt.Errorf("inventory: %w", err)
	}
	return inv, nil
}

// Message is the one-line text of r for logs and findings.
func (r Refused) Message() string {
	switch {
	case r.Estimate:
		return fmt.Sprintf("meter %s is left out: %s", r.Name, r.Reason)
	case r.Unavailable:
		return fmt.Sprintf("meter %s is unavailable on this hardware: %s", r.Name, r.Reason)
	case r.KindUnknown:
		return fmt.Sprintf("plugin %s (%s) may be an energy meter but is unusable, so any energy it would measure is missing: %s", r.Name, r.Path, r.Reason)
	}
	return fmt.Sprintf("meter %s (%s) is installed but unusable, so its energy is not measured: %s", r.Name, r.Path, r.Reason)
}

// RefusedFindings logs what AutoMeters left out — a meter unavailable on this hardware as a quiet
// note (info), one installed but unusable as a warning — and returns a CodeMeterRefused warning
// finding for each of the latter, about the whole experiment (no domain, no rank).
func RefusedFindings(log hclog.Logger, refused []Refused, advice string) []results.Finding {
	var out []results.Finding
	for _, r := range refused {
		if r.Unavailable || r.Estimate {
			log.Info(r.Message())
			continue
		}
		log.Warn(r.Message())
		out = append(out, results.Finding{Code: results.CodeMeterRefused, Severity: results.SeverityWarning, Message: r.Message(), Advice: advice})
	}
	return out
}
