package resultscmd

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/cliutil/render"
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/study"
)

// studyColumns are the figures of the study table, with their headers.
var studyColumns = []struct{ figure, header string }{
	{study.FigureJPerOutputToken, "J/TOKEN"},
	{study.FigureDynamicJPerOutputToken, "DYN J/TOKEN"},
	{study.FigureOutputTokensPerS, "TOK/S"},
	{study.FigureTTFTP50MS, "TTFT P50 MS"},
	{study.FigureTTFTP99MS, "TTFT P99 MS"},
	{study.FigureITLP50MS, "ITL P50 MS"},
	{study.FigureITLP99MS, "ITL P99 MS"},
	{study.FigurePowerW, "POWER W"},
}

// settingKeys are the columns of a study's settings: its axes, or every key its points set.
func settingKeys(a *study.Aggregate) []string {
	var keys []string
	for _, ax := range a.Axes {
		keys = append(keys, ax.Key)
	}
	if len(keys) > 0 {
		return keys
	}
	seen := map[string]bool{}
	for _, p := range a.Points {
		for k := range p.Settings {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	return keys
}

// meanCI formats a figure's mean ± the half-width of its 95 % interval (the mean alone with one
// cycle; "—" with none).
func meanCI(s *results.Stats) string {
	if s == nil || s.Mean == nil {
		return na
	}
	out := gnum(s.Mean)
	if s.CI95Half != nil {
		out += " ± " + gnum(s.CI95Half)
	}
	return out
}

func setting(v any) string {
	if v == nil {
		return na
	}
	return fmt.Sprint(v)
}

// WriteStudy prints a study: its header, one row per point (each figure's mean ± the 95 %
// t-interval's half-width over cycles, and the CV of J/token), then each point's findings.
func WriteStudy(w io.Writer, a *study.Aggregate) error {
	tw := render.NewTabWriter(w)
	row(tw, "study", a.StudyID+" ("+a.Name+")")
	row(tw, "state", a.State)
	row(tw, "base", a.Base)
	row(tw, "plan", fmt.Sprintf("%d points × %d cycles, order %s (seed %d), gap %g s", len(a.Points), a.Cycles, a.Order, a.Seed, a.GapS))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	keys := settingKeys(a)
	header := append([]string{"POINT"}, keys...)
	header = append(header, "N")
	for _, c := range studyColumns {
		header = append(header, c.header)
	}
	header = append(header, "CV J/TOKEN", "VALID")
	rows := make([][]string, 0, len(a.Points))
	for _, p := range a.Points {
		r := []string{p.ID}
		for _, k := range keys {
			r = append(r, setting(p.Settings[k]))
		}
		r = append(r, fmt.Sprintf("%d/%d", len(p.Experiments), a.Cycles))
		for _, c := range studyColumns {
			r = append(r, meanCI(p.Figures[c.figure]))
		}
		cv := na
		if s := p.Figures[study.FigureJPerOutputToken]; s != nil && s.CV != nil {
			cv = strconv.FormatFloat(*s.CV*100, 'f', 1, 64) + " %"
		}
		r = append(r, cv, yes(p.Valid))
		rows = append(rows, r)
	}
	if err := render.Table(w, header, rows); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nfigures: mean ± 95 % t-interval half-width over the point's cycles (docs/studies.md)")
	for _, p := range a.Points {
		if len(p.Findings) == 0 {
			continue
		}
		fmt.Fprintf(w, "\npoint %s:", p.ID)
		if err := WriteFindings(w, "  ", groupFindings(p.Findings), nil); err != nil {
			return err
		}
	}
	return nil
}

// StudyCSVHeader is the CSV header of a study export: the point, its settings (one column per
// key, named "set:<key>"), then for each figure its mean, std, ci95_low, ci95_high, cv and n.
func StudyCSVHeader(a *study.Aggregate) []string {
	h := []string{"study_id", "point", "config_hash", "cycles", "completed_cycles", "valid", "experiments"}
	for _, k := range settingKeys(a) {
		h = append(h, "set:"+k)
	}
	for _, f := range study.Figures {
		for _, s := range []string{"mean", "std", "ci95_low", "ci95_high", "cv", "n"} {
			h = append(h, f+"_"+s)
		}
	}
	return h
}

// WriteStudyCSV writes one row per point of a study.
func WriteStudyCSV(w io.Writer, a *study.Aggregate) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(StudyCSVHeader(a)); err != nil {
		return err
	}
	keys := settingKeys(a)
	for _, p := range a.Points {
		r := []string{a.StudyID, p.ID, p.ConfigHash, strconv.Itoa(a.Cycles), strconv.Itoa(len(p.Experiments)), strconv.FormatBool(p.Valid), strings.Join(p.Experiments, " ")}
		for _, k := range keys {
			v := ""
			if x, ok := p.Settings[k]; ok {
				v = fmt.Sprint(x)
			}
			r = append(r, v)
		}
		for _, f := range study.Figures {
			s := p.Figures[f]
			if s == nil {
				s = &results.Stats{}
			}
			r = append(r, cell(s.Mean), cell(s.Std), cell(s.CI95Low), cell(s.CI95High), cell(s.CV), strconv.Itoa(s.N))
		}
		if err := cw.Write(r); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// loadStudy reads a stored study, failing with a message that names it.
func loadStudy(f *cliutil.Factory, id string) (*study.Aggregate, []byte, error) {
	a, data, err := study.Load(f.ResultsDir, id)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, cliutil.Failed(fmt.Errorf("study %s has no study.json yet in %s (its sweep has not finished an experiment; `lemctl sweep --resume %s` continues it)", id, f.ResultsDir, id))
	}
	if err != nil {
		return nil, nil, cliutil.Failed(fmt.Errorf("study %s: %w", id, err))
	}
	return a, data, nil
}

func showStudy(f *cliutil.Factory, id string, raw bool, output string) error {
	if raw {
		return cliutil.Usagef("%s is a study: --raw shows one experiment's raw results (`lemctl results show` lists the study's experiments)", id)
	}
	a, data, err := loadStudy(f, id)
	if err != nil {
		return err
	}
	if output == render.FormatJSON {
		_, err := f.Out.Write(data)
		return err
	}
	return WriteStudy(f.Out, a)
}

func exportStudy(f *cliutil.Factory, id, format string) error {
	a, data, err := loadStudy(f, id)
	if err != nil {
		return err
	}
	switch format {
	case FormatJSON:
		_, err := f.Out.Write(data)
		return err
	case FormatTable:
		var buf bytes.Buffer
		if err := WriteStudyCSV(&buf, a); err != nil {
			return err
		}
		rows, err := csv.NewReader(&buf).ReadAll()
		if err != nil {
			return err
		}
		for _, r := range rows {
			for i := range r {
				if r[i] == "" {
					r[i] = na
				}
			}
		}
		return render.Table(f.Out, nil, rows)
	}
	return WriteStudyCSV(f.Out, a)
}

// listStudies returns the studies under --results-dir as list entries.
func listStudies(f *cliutil.Factory) ([]ListEntry, error) {
	ids, err := study.List(f.ResultsDir)
	if err != nil {
		return nil, cliutil.Failed(fmt.Errorf("list the studies in %s: %w", f.ResultsDir, err))
	}
	var out []ListEntry
	for _, id := range ids {
		le := ListEntry{ID: id, Kind: "study", RawRanks: []int{}, CompletedRanks: []int{}}
		if m, err := study.LoadManifest(f.ResultsDir, id); err == nil {
			le.State = m.State
			if m.Resumable() {
				le.State = m.State + " (resumable)"
			}
		}
		if a, _, err := study.Load(f.ResultsDir, id); err == nil {
			le.Points, le.Cycles = len(a.Points), a.Cycles
			for _, p := range a.Points {
				le.CompletedCycles += len(p.Experiments)
			}
			le.ModifiedUnixNS = a.StartUnixNS
			if a.EndUnixNS != nil {
				le.ModifiedUnixNS = *a.EndUnixNS
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(f.Err, "warning: study %s: %v\n", id, err)
		}
		out = append(out, le)
	}
	return out, nil
}

func writeStudyList(w io.Writer, studies []ListEntry) error {
	fmt.Fprintln(w)
	rows := make([][]string, 0, len(studies))
	for _, s := range studies {
		rows = append(rows, []string{s.ID, orNA(s.State), strconv.Itoa(s.Points), strconv.Itoa(s.Cycles),
			fmt.Sprintf("%d/%d", s.CompletedCycles, s.Points*s.Cycles), wall(s.ModifiedUnixNS)})
	}
	return render.Table(w, []string{"STUDY", "STATE", "POINTS", "CYCLES", "EXPERIMENTS", "MODIFIED"}, rows)
}

// groupFindings shows a finding that recurs over a point's cycles once: the first cycle's
// message, with how many cycles had it (study.json keeps every one).
func groupFindings(fs []results.Finding) []results.Finding {
	type key struct{ code, severity, domain string }
	var order []key
	first := map[key]results.Finding{}
	count := map[key]int{}
	for _, f := range fs {
		k := key{f.Code, f.Severity, f.Domain}
		if _, ok := first[k]; !ok {
			order = append(order, k)
			first[k] = f
		}
		count[k]++
	}
	out := make([]results.Finding, 0, len(order))
	for _, k := range order {
		f := first[k]
		if n := count[k]; n > 1 {
			f.Message += fmt.Sprintf(" (and %d more cycle(s) with %s)", n-1, orNA(f.Code))
		}
		out = append(out, f)
	}
	return out
}
