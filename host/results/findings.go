package results

import (
	"fmt"
	"sort"
	"strings"
)

// WithHealth returns the findings followed by the health findings of every domain (each tagged
// with its domain), so that what a meter said about a domain is shown with everything else.
func WithHealth(fs []Finding, domains []Domain) []Finding {
	out := append([]Finding{}, fs...)
	for _, d := range domains {
		for _, h := range d.Health {
			if h.Domain == "" {
				h.Domain = d.ID
			}
			out = append(out, h)
		}
	}
	return out
}

// Shown is the one list every view shows: the findings, then each free-text warning as a
// warning finding of its rank, sorted errors first, then warnings, then info (stable, so
// findings of one severity keep their order). Pass findings that already hold the domains'
// health (WithHealth) where a view shows it.
func Shown(fs []Finding, warnings []Warning) []Finding {
	out := append([]Finding{}, fs...)
	for _, w := range warnings {
		out = append(out, Finding{Severity: SeverityWarning, Message: w.Message, Rank: w.Rank})
	}
	sort.SliceStable(out, func(i, j int) bool { return SeverityOrder(out[i].Severity) < SeverityOrder(out[j].Severity) })
	return out
}

// SeverityOrder puts errors first, then warnings, then info, then anything else: the order in
// which every view (results show, measure, the report) lists findings.
func SeverityOrder(s string) int {
	switch s {
	case SeverityError:
		return 0
	case SeverityWarning:
		return 1
	case SeverityInfo:
		return 2
	}
	return 3
}

// Verdict is "VALID" or "INVALID" with the count of findings (and free-text warnings) by
// severity, e.g. "INVALID (1 error(s), 2 warning(s))".
func Verdict(valid bool, fs []Finding, warnings []Warning) string {
	counts := map[string]int{SeverityWarning: len(warnings)}
	for _, f := range fs {
		counts[f.Severity]++
	}
	verdict := "VALID"
	if !valid {
		verdict = "INVALID"
	}
	var parts []string
	for _, s := range []string{SeverityError, SeverityWarning, SeverityInfo} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s(s)", counts[s], s))
		}
	}
	if len(parts) > 0 {
		verdict += " (" + strings.Join(parts, ", ") + ")"
	}
	return verdict
}
