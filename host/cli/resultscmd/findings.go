package resultscmd

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/lemctl/lemctl/host/cliutil/render"
	"github.com/lemctl/lemctl/host/results"
)

// WriteFindings prints every finding — code, severity, domain, rank, message and advice — and
// every free-text warning, errors first, each line prefixed with indent. It is the one renderer
// of findings: `lemctl run`'s summary, `lemctl results show` and `lemctl measure` all use it.
// fs should already hold the domains' health (WithHealth). Nothing is printed when there is
// nothing to say.
func WriteFindings(w io.Writer, indent string, fs []results.Finding, warnings []results.Warning) error {
	if len(fs) == 0 && len(warnings) == 0 {
		return nil
	}
	rows := results.Shown(fs, warnings)
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
