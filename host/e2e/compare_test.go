package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lemctl/lemctl/host/study"
)

// TestCompareTwoRuns runs the same experiment twice, four repeats each, with the scripted meter
// at 100 W and then at 50 W, and compares them: B's energy per output token is about half of A's
// and significant; the verdict says so in the table and in the JSON.
func TestCompareTwoRuns(t *testing.T) {
	dir := t.TempDir()
	res := filepath.Join(dir, "results")
	var ids []string
	for _, power := range []string{"100.0", "50.0"} {
		meter := "\n[energy]\nmeters = [\"example-meter\"]\n\n[energy.example-meter]\ndomains = [\"pkg:package:node\"]\npower_w = " + power +
			"\nupdate_period = \"10ms\"\ninterval = \"20ms\"\n"
		cfg := strings.Replace(experiment("compare-"+strings.TrimSuffix(power, ".0"), 1, meter), "min_window_s = 0", "min_window_s = 0.5\nrepeats = 4", 1)
		path := filepath.Join(dir, "p"+power+".toml")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		before, _ := os.ReadDir(filepath.Join(res, "runs"))
		r := lemctl(t, nil, "run", path, "--plugin-dir", pluginDir, "--results-dir", res, "--progress", "quiet")
		if code := r.wait(t, 3*time.Minute); code != 0 {
			t.Fatalf("run at %s W exited %d\nstderr:\n%s", power, code, r.stderr.String())
		}
		after, _ := os.ReadDir(filepath.Join(res, "runs"))
		for _, e := range after {
			if !containsEntry(before, e.Name()) {
				ids = append(ids, e.Name())
			}
		}
	}
	if len(ids) != 2 {
		t.Fatalf("want two experiments, got %v", ids)
	}
	r := lemctl(t, nil, "compare", ids[0], ids[1], "--plugin-dir", pluginDir, "--results-dir", res, "-o", "json")
	if code := r.wait(t, time.Minute); code != 0 {
		t.Fatalf("compare exited %d\nstderr:\n%s", code, r.stderr.String())
	}
	var rep struct {
		A, B struct {
			Kind string `json:"kind"`
		}
		Pairs []struct {
			Figures []struct {
				Figure      string   `json:"figure"`
				NA          int      `json:"n_a"`
				NB          int      `json:"n_b"`
				Ratio       *float64 `json:"ratio"`
				Significant bool     `json:"significant"`
				Verdict     string   `json:"verdict"`
			} `json:"figures"`
		} `json:"pairs"`
	}
	if err := json.Unmarshal(r.stdout.Bytes(), &rep); err != nil {
		t.Fatalf("compare -o json: %v\n%s", err, r.stdout.String())
	}
	if rep.A.Kind != "experiment" || len(rep.Pairs) != 1 {
		t.Fatalf("report %s", r.stdout.String())
	}
	found := false
	for _, f := range rep.Pairs[0].Figures {
		if f.Figure != "j_per_output_token" {
			continue
		}
		found = true
		if f.NA != 4 || f.NB != 4 || !f.Significant || f.Ratio == nil || *f.Ratio < 0.3 || *f.Ratio > 0.7 ||
			!strings.Contains(f.Verdict, "less energy per output token; significant at 5 %") {
			t.Errorf("j_per_output_token at 50 W against 100 W: %+v (ratio %v)", f, deref(f.Ratio))
		}
	}
	if !found {
		t.Errorf("no j_per_output_token compared:\n%s", r.stdout.String())
	}
	tbl := lemctl(t, nil, "compare", ids[0], ids[1], "--plugin-dir", pluginDir, "--results-dir", res)
	if code := tbl.wait(t, time.Minute); code != 0 || !strings.Contains(tbl.stdout.String(), "VERDICT") || !strings.Contains(tbl.stdout.String(), "B uses ") {
		t.Errorf("compare table: exit %d\n%s\n%s", code, tbl.stdout.String(), tbl.stderr.String())
	}
	// One experiment against itself: no significant difference anywhere.
	same := lemctl(t, nil, "compare", ids[0], ids[0], "--plugin-dir", pluginDir, "--results-dir", res, "-o", "json")
	if code := same.wait(t, time.Minute); code != 0 || strings.Contains(same.stdout.String(), `"significant": true`) {
		t.Errorf("an experiment against itself: exit %d\n%s", code, same.stdout.String())
	}
	// A study that does not exist is said.
	fr := lemctl(t, nil, "frontier", "no-such-study", "--results-dir", res)
	if code := fr.wait(t, time.Minute); code != 1 || !strings.Contains(fr.stderr.String(), "no such study") {
		t.Errorf("frontier of a missing study: exit %d, %s", code, fr.stderr.String())
	}
}

func containsEntry(es []os.DirEntry, name string) bool {
	for _, e := range es {
		if e.Name() == name {
			return true
		}
	}
	return false
}

// checkCompareAndFrontier reads a swept study whose axes are the batch size and the example
// meter's power (40 W and 160 W): at the same batch size the 160 W point uses about 4× the
// energy per token; `frontier --slo 'power_w<=100'` recommends a 40 W point, and
// an SLO nothing meets gives `recommended: null`.
func checkCompareAndFrontier(t *testing.T, res string, a *study.Aggregate) {
	t.Helper()
	byPower, batch4 := map[float64]string{}, map[float64]string{}
	for _, p := range a.Points {
		w, _ := p.Settings["energy.example-meter.power_w"].(float64)
		switch b, _ := p.Settings["workload.batch_size"].(float64); b {
		case 1:
			byPower[w] = a.StudyID + ":" + p.ID
		case 4:
			batch4[w] = a.StudyID + ":" + p.ID
		}
	}
	if byPower[40] == "" || byPower[160] == "" || batch4[40] == "" || batch4[160] == "" {
		t.Fatalf("no batch-1 and batch-4 points at 40 W and 160 W: %v %v", byPower, batch4)
	}
	// Two null differences: batch 1 against batch 4 at 40 W and at 160 W. Each is a true null
	// tested at 5 %, so each alone is called significant in about 1 run of 20 by chance (the
	// cycles' powers carry the meter's edge error: ± P·U/√12 per edge, a few % of these short
	// windows); both at once in about 1 of 400. A compare that calls nulls significant — or a
	// meter reading biased by the window's length, as M2.8's unseen tail was — fails both.
	sig40 := nullCompare(t, res, byPower[40], batch4[40])
	sig160 := nullCompare(t, res, byPower[160], batch4[160])
	if sig40 && sig160 {
		t.Errorf("batch 1 against batch 4 at the same power: both null differences called significant (40 W and 160 W), want no significant difference")
	}
	for _, f := range compareFigures(t, res, byPower[40], byPower[160]) {
		// Three cycles of a tiny model on a loaded machine can be too noisy for significance (the
		// verdict then says how large a difference n could detect): the ratio is the truth here.
		if f.Figure == study.FigureJPerOutputToken && (f.Ratio == nil || *f.Ratio < 2 ||
			f.Significant && !strings.Contains(f.Verdict, "more energy per output token") ||
			!f.Significant && !strings.Contains(f.Verdict, "n too small to detect less than")) {
			t.Errorf("160 W against 40 W: %+v (ratio %v)", f, deref(f.Ratio))
		}
		// The meter's power is the known difference itself: 4× (each point within the 15 % the
		// sweep check above allows: 2.96–5.41×) and significant at any load.
		if f.Figure == study.FigurePowerW && (f.Ratio == nil || *f.Ratio < 160*0.85/(40*1.15) || *f.Ratio > 160*1.15/(40*0.85) || !f.Significant) {
			t.Errorf("power 160 W against 40 W: %+v (ratio %v), want 4× within the points' 15 %% and significant", f, deref(f.Ratio))
		}
	}
	fr := lemctl(t, nil, "frontier", a.StudyID, "--slo", "power_w<=100", "--results-dir", res, "-o", "json")
	if code := fr.wait(t, time.Minute); code != 0 {
		t.Fatalf("frontier exited %d: %s", code, fr.stderr.String())
	}
	var front struct {
		Recommended *struct {
			Settings map[string]any `json:"settings"`
		} `json:"recommended"`
	}
	if err := json.Unmarshal(fr.stdout.Bytes(), &front); err != nil || front.Recommended == nil || front.Recommended.Settings["energy.example-meter.power_w"] != 40.0 {
		t.Errorf("frontier --slo power_w<=100: %v\n%s", err, fr.stdout.String())
	}
	none := lemctl(t, nil, "frontier", a.StudyID, "--slo", "power_w<=1", "--results-dir", res, "-o", "json")
	if code := none.wait(t, time.Minute); code != 0 || !strings.Contains(none.stdout.String(), `"recommended": null`) {
		t.Errorf("frontier with an SLO no point meets: exit %d\n%s", code, none.stdout.String())
	}
}

// nullCompare compares the power of two points whose meter was set to the same power (batch 1
// and 4): the same truth, only the windows differ. It reports whether compare called the
// difference significant, and checks the verdict says what the flag says.
func nullCompare(t *testing.T, res, a, b string) bool {
	t.Helper()
	for _, f := range compareFigures(t, res, a, b) {
		if f.Figure != study.FigurePowerW {
			continue
		}
		t.Logf("null %s against %s: power %v W against %v W: %s", a, b, deref(f.MeanA), deref(f.MeanB), f.Verdict)
		if f.Significant == strings.HasPrefix(f.Verdict, "no significant difference") {
			t.Errorf("%s against %s: significant %v, verdict %q", a, b, f.Significant, f.Verdict)
		}
		return f.Significant
	}
	t.Errorf("compare of %s and %s gave no %s figure", a, b, study.FigurePowerW)
	return false
}

// comparedFigure is one figure of `lemctl compare -o json`'s single pair.
type comparedFigure struct {
	Figure      string   `json:"figure"`
	Ratio       *float64 `json:"ratio"`
	MeanA       *float64 `json:"mean_a"`
	MeanB       *float64 `json:"mean_b"`
	Significant bool     `json:"significant"`
	Verdict     string   `json:"verdict"`
}

// compareFigures runs `lemctl compare a b -o json` and returns the figures of its one pair.
func compareFigures(t *testing.T, res, a, b string) []comparedFigure {
	t.Helper()
	r := lemctl(t, nil, "compare", a, b, "--results-dir", res, "--plugin-dir", pluginDir, "-o", "json")
	if code := r.wait(t, time.Minute); code != 0 {
		t.Fatalf("compare exited %d: %s", code, r.stderr.String())
	}
	var rep struct {
		Pairs []struct {
			Figures []comparedFigure `json:"figures"`
		} `json:"pairs"`
	}
	if err := json.Unmarshal(r.stdout.Bytes(), &rep); err != nil || len(rep.Pairs) != 1 {
		t.Fatalf("compare -o json: %v\n%s", err, r.stdout.String())
	}
	return rep.Pairs[0].Figures
}
