package resultscmd

import (
	"context"
	"fmt"

	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/sysinfo"
	"github.com/lemctl/lemctl/sdk"
)

// runState is an experiment's run as the manifest says, with a "running" run whose lemctl is
// gone shown as abandoned (results.Manifest.ShownState).
type runState struct {
	State    string // "" without a readable manifest
	Manifest *results.Manifest
}

// loadRunState reads exp's manifest; a missing or unreadable one gives an empty state.
func loadRunState(ctx context.Context, repo sdk.Repository, exp string) runState {
	data, err := repo.LoadManifest(ctx, exp)
	if err != nil {
		return runState{}
	}
	m, err := results.DecodeManifest(data)
	if err != nil {
		return runState{}
	}
	return runState{State: ShownState(m), Manifest: m}
}

// ShownState is a stored manifest's state as this host sees it: "abandoned" for a run still
// "running" whose lemctl is gone (results.Manifest.ShownState); the stored state when this host
// cannot be read.
func ShownState(m *results.Manifest) string {
	sys := sysinfo.Default()
	here, err := sys.Host()
	if err != nil {
		return m.State
	}
	return m.ShownState(results.Host(here), sys.Running)
}

// Describe is the state with what a user should know — who died, what to do — or "" when there
// is nothing to say (no manifest, or a completed run).
func (r runState) Describe(exp string) string {
	m := r.Manifest
	switch {
	case r.State == "" || r.State == results.StateCompleted:
		return "" // nothing to warn of
	case r.State == results.StateAbandoned:
		return fmt.Sprintf("abandoned: its lemctl (pid %d on %s) is gone without a final state; `lemctl aggregate %s --no-strict` aggregates what its workers saved",
			m.LemctlPID, m.LemctlHost.Hostname, exp)
	case m.Error != "":
		return r.State + ": " + m.Error
	}
	return r.State
}
