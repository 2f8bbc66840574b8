package report

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lemctl/lemctl/host/results"
)

// NotMeasured is how a page shows a figure a result does not hold.
const NotMeasured = "not measured"

// g formats a nullable figure with 4 significant digits and its unit; NotMeasured when nil.
func g(v *float64, unit string) string {
	if v == nil || !finite(*v) {
		return NotMeasured
	}
	return gf(*v, unit)
}

// gu formats a figure with its standard uncertainty ("12.5 ± 0.3 J") when the results give one,
// else as g does.
func gu(v, u *float64, unit string) string {
	if v == nil || !finite(*v) || u == nil || !finite(*u) {
		return g(v, unit)
	}
	return gf(*v, "") + " ± " + gf(*u, unit)
}

func gf(v float64, unit string) string {
	s := strconv.FormatFloat(v, 'g', 4, 64)
	if strings.Contains(s, "e") {
		s = fmt.Sprintf("%.3e", v)
	}
	if unit != "" {
		s += " " + unit
	}
	return s
}

// pct formats a share (0–1) as a percentage.
func pct(v *float64) string {
	if v == nil {
		return NotMeasured
	}
	return fmt.Sprintf("%.2f %%", *v*100)
}

func wall(ns int64) string {
	if ns == 0 {
		return NotMeasured
	}
	return time.Unix(0, ns).UTC().Format("2006-01-02 15:04:05.000 UTC")
}

func orNM(s string) string {
	if s == "" {
		return NotMeasured
	}
	return s
}

func ints(v []int) string {
	if len(v) == 0 {
		return "—"
	}
	// Runs of consecutive ranks as a-b.
	var parts []string
	for i := 0; i < len(v); {
		j := i
		for j+1 < len(v) && v[j+1] == v[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d–%d", v[i], v[j]))
		} else {
			parts = append(parts, strconv.Itoa(v[i]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

// FindingRow is one finding as a page lists it.
type FindingRow struct {
	Severity, Code, Domain, Rank, Message, Advice string
}

// findingRows returns the findings, the domains' health and the free-text warnings, errors
// first, then warnings, then info.
func findingRows(fs []results.Finding, domains []results.Domain, warnings []results.Warning) []FindingRow {
	all := results.Shown(results.WithHealth(fs, domains), warnings)
	out := make([]FindingRow, len(all))
	for i, f := range all {
		rank := "all"
		if f.Rank != nil {
			rank = strconv.Itoa(*f.Rank)
		}
		out[i] = FindingRow{Severity: orNM(f.Severity), Code: f.Code, Domain: f.Domain, Rank: rank, Message: f.Message, Advice: f.Advice}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// quantileAt returns the q-quantile of sorted (nearest rank).
func quantileAt(sorted []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
