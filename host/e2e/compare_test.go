package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
