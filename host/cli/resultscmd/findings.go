package resultscmd

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/lemctl/lemctl/host/cliutil/render"
	"github.com/lemctl/lemctl/host/results"
)

// WithHealth returns the findings followed by the health findings of every domain (each tagged
// with its domain), so that what a meter said about a domain is shown with everything else.
func WithHealth(fs []results.Finding, domains []results.Domain) []results.Finding {
	out := append([]results.Finding{}, fs...)
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

// severityOrder puts errors first, then warnings, then info, then anything else.
func severityOrder(s string) int {
	switch s {
	case results.SeverityError:
		return 0
	case results.SeverityWarning:
		return 1
	case results.SeverityInfo:
		return 2
	}
	return 3
}

// Verdict is "VALID" or "INVALID" with the count of findings (and free-text warnings) by
// severity, e.g. "INVALID (1 error(s), 2 warning(s))".
func Verdict(valid bool, fs []results.Finding, warnings []results.Warning) string {
	counts := map[string]int{results.SeverityWarning: len(warnings)}
	for _, f := range fs {
		counts[f.Severity]++
	}
	verdict := "VALID"
	if !valid {
		verdict = "INVALID"
	}
	var parts []string
	for _, s := range []string{results.SeverityError, results.SeverityWarning, results.SeverityInfo} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s(s)", counts[s], s))
		}
	}
	if len(parts) > 0 {
		verdict += " (" + strings.Join(parts, ", ") + ")"
	}
	return verdict
}

// WriteFindings prints every finding — code, severity, domain, rank, message and advice — and
// every free-text warning, errors first, each line prefixed with indent. It is the one renderer
// of findings: `lemctl run`'s summary, `lemctl results show` and `lemctl measure` all use it.
// fs should already hold the domains' health (WithHealth). Nothing is printed when there is
// nothing to say.
func WriteFindings(w io.Writer, indent string, fs []results.Finding, warnings []results.Warning) error {
	if len(fs) == 0 && len(warnings) == 0 {
		return nil
	}
	rows := append([]results.Finding{}, fs...)
	for _, wn := range warnings {
		rows = append(rows, results.Finding{Severity: results.SeverityWarning, Message: wn.Message, Rank: wn.Rank})
	}
	sort.SliceStable(rows, func(i, j int) bool { return severityOrder(rows[i].Severity) < severityOrder(rows[j].Severity) })
	// The RANK column only where some finding has a rank (not in `lemctl measure`).
	ranked := false
	for _, f := range rows {
		ranked = ranked || f.Rank != nil
	}
	fmt.Fprintln(w)
	tw := render.NewTabWriter(w)
	if ranked {
		fmt.Fprintf(tw, "%sSEVERITY\tCODE\tDOMAIN\tRANK\tMESSAGE\n", indent)
	} else {
		fmt.Fprintf(tw, "%sSEVERITY\tCODE\tDOMAIN\tMESSAGE\n", indent)
	}
	for _, f := range rows {
		cells := []string{orNA(f.Severity), orNA(f.Code), orNA(f.Domain)}
		if ranked {
			rank := "all"
			if f.Rank != nil {
				rank = strconv.Itoa(*f.Rank)
			}
			cells = append(cells, rank)
		}
		fmt.Fprintf(tw, "%s%s\t%s\n", indent, strings.Join(cells, "\t"), f.Message)
		if f.Advice != "" {
			fmt.Fprintf(tw, "%s%s→ %s\n", indent, strings.Repeat("\t", len(cells)), f.Advice)
		}
	}
	return tw.Flush()
}
