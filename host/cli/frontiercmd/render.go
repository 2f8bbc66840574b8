package frontiercmd

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/lemctl/lemctl/host/cliutil/render"
	"github.com/lemctl/lemctl/host/study"
)

const na = "—"

// planeLabels are the planes' short names in tables.
var planeLabels = map[string]string{"energy_vs_itl_p99": "J/token–ITL p99", "energy_vs_throughput": "J/token–tokens/s"}

// WriteReport prints rep for a reader: warnings, the points with their figures and frontiers, the
// Pareto sets and the recommendation.
func WriteReport(w io.Writer, rep *Report) error {
	fmt.Fprintf(w, "study %s (%s, %d points, %d cycles each)\n", rep.StudyID, rep.State, len(rep.Points), rep.Cycles)
	for _, s := range rep.Warnings {
		fmt.Fprintf(w, "warning: %s\n", s)
	}
	fmt.Fprintln(w)
	header := []string{"POINT", "SETTINGS", "J/TOKEN (95 % CI)", "ITL P99 MS", "TTFT P99 MS", "TOKENS/S", "PARETO"}
	if len(rep.SLOs) > 0 {
		header = append(header, "MEETS SLO")
	}
	rows := make([][]string, 0, len(rep.Points))
	for _, p := range rep.Points {
		var on []string
		for _, pl := range p.Pareto {
			on = append(on, planeLabels[pl])
		}
		pareto := strings.Join(on, ", ")
		if !p.Considered {
			pareto = "left out: " + p.Excluded
		}
		r := []string{p.ID, settings(p.Settings), withCI(p.Figures, study.FigureJPerOutputToken), mean(p.Figures, study.FigureITLP99MS),
			mean(p.Figures, study.FigureTTFTP99MS), mean(p.Figures, study.FigureOutputTokensPerS), orNA(pareto)}
		if p.MeetsSLO != nil {
			m := yesNo(*p.MeetsSLO)
			if !p.Considered {
				m += " (left out)"
			}
			r = append(r, m)
		}
		rows = append(rows, r)
	}
	if err := render.Table(w, header, rows); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, pl := range rep.Planes {
		fmt.Fprintf(w, "pareto %s (min J/token, %s %s): %s\n", planeLabels[pl.Name], pl.YGoal, pl.Y, orNA(strings.Join(pl.Pareto, ", ")))
	}
	var slos []string
	for _, s := range rep.SLOs {
		slos = append(slos, s.Text)
	}
	r := rep.Recommended
	switch {
	case r == nil && len(slos) > 0:
		fmt.Fprintf(w, "recommended: none — no point meets %s\n", strings.Join(slos, " and "))
	case r == nil:
		fmt.Fprintln(w, "recommended: none — no point has a J/token to compare")
	default:
		what := "lowest J/token"
		if len(slos) > 0 {
			what = "lowest J/token meeting " + strings.Join(slos, " and ")
		}
		fmt.Fprintf(w, "recommended: %s %s (%s): %s J/token\n", r.Point, settings(r.Settings), what, figCI(r.JPerOutputToken))
		for _, m := range r.Margins {
			ci := "no interval (fewer than two cycles)"
			if m.CI95 != nil {
				ci = fmt.Sprintf("95 %% CI [%s, %s]", g4(m.CI95.Low), g4(m.CI95.High))
				if !m.Confident {
					ci += ", crosses the limit"
				}
			}
			fmt.Fprintf(w, "  %s: mean %s, margin %s (%s)\n", m.SLO, g4(m.Mean), g4(m.Margin), ci)
		}
	}
	return nil
}

func g4(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

func mean(fs map[string]Figure, name string) string {
	f, ok := fs[name]
	if !ok {
		return na
	}
	return g4(f.Mean)
}

func figCI(f Figure) string {
	if f.CI95 == nil {
		return g4(f.Mean)
	}
	return fmt.Sprintf("%s [%s, %s]", g4(f.Mean), g4(f.CI95.Low), g4(f.CI95.High))
}

func withCI(fs map[string]Figure, name string) string {
	f, ok := fs[name]
	if !ok {
		return na
	}
	return figCI(f)
}

func orNA(s string) string {
	if s == "" {
		return na
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
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
