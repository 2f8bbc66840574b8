package comparecmd

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/cliutil/render"
)

const na = "—"

// WriteReport prints rep for a reader: warnings and environment differences first (to stdout,
// where the table is read), then one table per pair.
func WriteReport(f *cliutil.Factory, rep *Report) error {
	w := f.Out
	fmt.Fprintf(w, "A  %s %s\nB  %s %s\n", rep.A.Kind, rep.A.ID, rep.B.Kind, rep.B.ID)
	for _, d := range rep.EnvironmentDifferences {
		fmt.Fprintf(w, "warning: environments differ: %s\n", d)
	}
	for _, s := range rep.Warnings {
		fmt.Fprintf(w, "warning: %s\n", s)
	}
	for _, p := range rep.Pairs {
		fmt.Fprintln(w)
		if rep.A.Kind == KindStudy {
			fmt.Fprintf(w, "%s vs %s  %s\n", p.A, p.B, settings(p.Settings))
		}
		if len(p.Figures) == 0 {
			fmt.Fprintln(w, "no figure is measured on both sides")
			continue
		}
		rows := make([][]string, 0, len(p.Figures))
		for _, fg := range p.Figures {
			rows = append(rows, []string{fg.Figure, sideCell(fg.MeanA, fg.NA), sideCell(fg.MeanB, fg.NB), diffCell(fg), ratioCell(fg), num(fg.HedgesG), fg.Verdict})
		}
		if err := render.Table(w, []string{"FIGURE", "A", "B", "B − A (95 % CI)", "B/A (95 % CI)", "G", "VERDICT"}, rows); err != nil {
			return err
		}
	}
	for _, u := range rep.Unmatched {
		id := rep.A.ID
		if u.Side == "b" {
			id = rep.B.ID
		}
		fmt.Fprintf(w, "not compared: %s:%s %s (no point with these settings in the other study)\n", id, u.Point, settings(u.Settings))
	}
	return nil
}

func g4(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

func num(v *float64) string {
	if v == nil {
		return na
	}
	return g4(*v)
}

func sideCell(m *float64, n int) string {
	if m == nil {
		return na
	}
	return fmt.Sprintf("%s (n=%d)", g4(*m), n)
}

func diffCell(f Figure) string {
	if f.Diff == nil {
		return na
	}
	if f.DiffCI95 == nil {
		return g4(*f.Diff)
	}
	return fmt.Sprintf("%s [%s, %s]", g4(*f.Diff), g4(f.DiffCI95.Low), g4(f.DiffCI95.High))
}

func ratioCell(f Figure) string {
	if f.Ratio == nil {
		return na
	}
	if f.RatioCI95 == nil {
		return g4(*f.Ratio)
	}
	return fmt.Sprintf("%s [%s, %s]", g4(*f.Ratio), g4(f.RatioCI95.Low), g4(f.RatioCI95.High))
}

// settings writes a point's settings as key=value, sorted by key.
func settings(s map[string]any) string {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%v", k, s[k]))
	}
	return strings.Join(parts, " ")
}
