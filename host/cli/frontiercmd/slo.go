package frontiercmd

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/study"
)

// SLO is one service-level objective: a study figure's mean over cycles compared with a limit.
type SLO struct {
	// Text is the objective as written on the command line.
	Text   string  `json:"text"`
	Figure string  `json:"figure"`
	Op     string  `json:"op"` // <=, <, >=, >
	Limit  float64 `json:"limit"`
}

// aliases are the short names --slo accepts besides the figure names.
var aliases = map[string]string{"tokens_per_s": study.FigureOutputTokensPerS}

const sloForms = "valid forms: itl_p99_ms<=50, ttft_p99_ms<=500, tokens_per_s>=100 (any study figure: %s, or tokens_per_s; operators <=, <, >=, >; the limit a finite number)"

// ParseSLO reads one --slo value such as "itl_p99_ms<=50".
func ParseSLO(text string) (SLO, error) {
	bad := func(why string) (SLO, error) {
		return SLO{}, cliutil.Usagef("--slo %q: %s; "+sloForms, text, why, strings.Join(study.Figures, ", "))
	}
	i := strings.IndexAny(text, "<>")
	if i < 0 {
		return bad("no operator")
	}
	op := text[i : i+1]
	rest := text[i+1:]
	if strings.HasPrefix(rest, "=") {
		op += "="
		rest = rest[1:]
	}
	name := strings.TrimSpace(text[:i])
	if a, ok := aliases[name]; ok {
		name = a
	}
	if name == "" {
		return bad("no figure before the operator")
	}
	if !slices.Contains(study.Figures, name) {
		return bad(fmt.Sprintf("unknown figure %q", name))
	}
	limit, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
	if err != nil || math.IsNaN(limit) || math.IsInf(limit, 0) {
		return bad(fmt.Sprintf("the limit %q is not a finite number", strings.TrimSpace(rest)))
	}
	return SLO{Text: text, Figure: name, Op: op, Limit: limit}, nil
}

// Meets reports whether v meets the objective.
func (s SLO) Meets(v float64) bool {
	switch s.Op {
	case "<=":
		return v <= s.Limit
	case "<":
		return v < s.Limit
	case ">=":
		return v >= s.Limit
	default:
		return v > s.Limit
	}
}

// Margin is how far v is inside the limit (negative: outside): limit − v for an upper limit,
// v − limit for a lower one.
func (s SLO) Margin(v float64) float64 {
	if strings.HasPrefix(s.Op, "<") {
		return s.Limit - v
	}
	return v - s.Limit
}
