package study

import (
	"fmt"

	"github.com/lemctl/lemctl/host/results"
)

// Finding codes a study adds to a point.
const (
	CodeCyclesMissing = "study_cycles_missing" // fewer completed cycles than the study asks
	CodePartial       = "study_partial_experiment"
	// CodeThermalWaitTimeout: before this cycle, the thermal wait gave up (docs/studies.md).
	CodeThermalWaitTimeout = "study_thermal_wait_timeout"
)

// thermalWaitOf returns the thermal wait recorded on the run that made experiment exp.
func (m *Manifest) thermalWaitOf(exp string) *ThermalWait {
	for _, r := range m.Runs {
		if r.ExperimentID == exp && r.State == results.StateCompleted {
			return r.ThermalWait
		}
	}
	return nil
}

// FiguresOf returns one experiment's figures by name; nil where the experiment did not measure
// it. power_w is the counted energy divided by the window's length (the union of the workers'
// windows when the aggregate has it), the mean counted power.
func FiguresOf(a *results.Aggregated) map[string]*float64 {
	window := a.Window.DurationS
	if a.Window.UnionS != nil {
		window = *a.Window.UnionS
	}
	var power *float64
	if a.Energy.TotalJ != nil && window > 0 {
		power = results.Float(*a.Energy.TotalJ / window)
	}
	return map[string]*float64{
		FigureJPerOutputToken:        a.Energy.JPerOutputToken,
		FigureDynamicJPerOutputToken: a.Energy.DynamicJPerOutputToken,
		FigureOutputTokensPerS:       a.Throughput.OutputTokensPerS,
		FigureTTFTP50MS:              a.LatencyMS.TTFT.P50,
		FigureTTFTP99MS:              a.LatencyMS.TTFT.P99,
		FigureITLP50MS:               a.LatencyMS.ITL.P50,
		FigureITLP99MS:               a.LatencyMS.ITL.P99,
		FigurePowerW:                 power,
	}
}

// Completed returns, for each cycle 1..cycles of point, the experiment id of the last completed
// run with the point's config hash ("" where none).
func (m *Manifest) Completed(point string, cycles int) []string {
	out := make([]string, cycles)
	hash := m.ConfigHashes[point]
	for _, r := range m.Runs {
		if r.Point == point && r.State == results.StateCompleted && r.ConfigHash == hash && r.Cycle >= 1 && r.Cycle <= cycles {
			out[r.Cycle-1] = r.ExperimentID
		}
	}
	return out
}

// Build makes the study aggregate from the manifest: per point, the statistics over its completed
// cycles (in cycle order) of each figure, from the experiments' aggregates that load returns.
func Build(m *Manifest, f *File, load func(exp string) (*results.Aggregated, error)) (*Aggregate, error) {
	a := &Aggregate{SchemaVersion: SchemaVersion, Kind: Kind, StudyID: m.StudyID, Name: f.Name, Base: f.Base, StudyFile: m.StudyFile,
		Cycles: f.Cycles, Order: f.Order, Seed: f.Seed, GapS: f.GapS, Axes: append([]Axis{}, f.Axes...), Points: []PointAggregate{},
		State: m.State, StartUnixNS: m.StartUnixNS, EndUnixNS: m.EndUnixNS, LemctlVersion: m.LemctlVersion}
	for _, p := range m.Points {
		pa := PointAggregate{ID: p.ID, Settings: p.SettingsMap(), ConfigHash: m.ConfigHashes[p.ID], Experiments: []string{},
			Valid: true, Findings: []results.Finding{}, Figures: map[string]*results.Stats{}}
		values := map[string][]float64{}
		for i, exp := range m.Completed(p.ID, f.Cycles) {
			if exp == "" {
				continue
			}
			agg, err := load(exp)
			if err != nil {
				return nil, fmt.Errorf("point %s cycle %d: %w", p.ID, i+1, err)
			}
			pa.Experiments = append(pa.Experiments, exp)
			if !agg.Validity.Valid {
				pa.Valid = false
			}
			for _, fd := range agg.Validity.Findings {
				if fd.Severity == results.SeverityInfo {
					continue
				}
				fd.Message = fmt.Sprintf("cycle %d (%s): %s", i+1, exp, fd.Message)
				pa.Findings = append(pa.Findings, fd)
			}
			if w := m.thermalWaitOf(exp); w != nil && w.TimedOut {
				pa.Findings = append(pa.Findings, results.Finding{Code: CodeThermalWaitTimeout, Severity: results.SeverityWarning,
					Message: fmt.Sprintf("cycle %d (%s) started before the temperatures settled: %s", i+1, exp, w.Warning),
					Advice:  "a longer gap_s or thermal_max_wait_s, or a larger thermal_tolerance_c, lets the device cool back between experiments"})
			}
			if agg.Partial {
				pa.Valid = false
				pa.Findings = append(pa.Findings, results.Finding{Code: CodePartial, Severity: results.SeverityError,
					Message: fmt.Sprintf("cycle %d (%s) is a partial aggregate: %v", i+1, exp, agg.PartialReasons)})
			}
			for name, v := range FiguresOf(agg) {
				if v != nil {
					values[name] = append(values[name], *v)
				}
			}
		}
		if n := len(pa.Experiments); n < f.Cycles {
			if n == 0 {
				pa.Valid = false
			}
			pa.Findings = append(pa.Findings, results.Finding{Code: CodeCyclesMissing, Severity: results.SeverityWarning,
				Message: fmt.Sprintf("%d of %d cycles completed", n, f.Cycles),
				Advice:  fmt.Sprintf("`lemctl sweep --resume %s` runs the missing cycles", m.StudyID)})
		}
		for _, name := range Figures {
			pa.Figures[name] = results.NewStats(values[name])
		}
		a.Points = append(a.Points, pa)
	}
	return a, nil
}
