package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lemctl/lemctl/host/cli/measurecmd"
	"github.com/lemctl/lemctl/host/results"
)

// refusedPluginDir is the e2e plugin directory plus three copies of the discovery test plugin:
// lem-plugin-crash (exits at start), lem-plugin-invfail (its Inventory fails) and
// lem-plugin-invunavail (its Inventory says the hardware is not there).
func refusedPluginDir(t *testing.T) string {
	return pluginDirWithBad(t, "crash", "invfail", "invunavail")
}

// pluginDirWithBad is the e2e plugin directory plus a copy of the discovery test plugin
// (host/discovery/internal/badplugin) as lem-plugin-<mode> for each mode.
func pluginDirWithBad(t *testing.T, modes ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "plugins")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(pluginDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := copyFile(filepath.Join(pluginDir, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	bad := filepath.Join(t.TempDir(), "badplugin")
	if err := gobuild(repoRoot, "./host/discovery/internal/badplugin", bad); err != nil {
		t.Fatal(err)
	}
	for _, name := range modes {
		if err := copyFile(bad, filepath.Join(dir, "lem-plugin-"+name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// meterRefused returns the messages of the meter_refused findings, after checking that each is an
// experiment-level warning (no domain, no rank).
func meterRefused(t *testing.T, fs []results.Finding) []string {
	t.Helper()
	var out []string
	for _, f := range fs {
		if f.Code != results.CodeMeterRefused {
			continue
		}
		if f.Severity != results.SeverityWarning || f.Domain != "" || f.Rank != nil {
			t.Errorf("meter_refused finding %+v: want a warning with no domain and a null rank", f)
		}
		out = append(out, f.Message)
	}
	return out
}

// checkRefused wants exactly the crash and invfail plugins named, each with its reason, and
// nothing about the meter that is merely unavailable on this hardware.
func checkRefused(t *testing.T, where string, msgs []string) {
	t.Helper()
	all := strings.Join(msgs, "\n")
	if len(msgs) != 2 || !strings.Contains(all, "crash") || !strings.Contains(all, "invfail") ||
		!strings.Contains(all, "simulated inventory failure") {
		t.Errorf("%s: meter_refused findings %q; want one for crash and one for invfail (with its reason)", where, msgs)
	}
	if strings.Contains(all, "invunavail") {
		t.Errorf("%s: a meter unavailable on this hardware is a warning: %q", where, msgs)
	}
}

// TestAutoMetersWarnAboutRefusedMeters: under meters = "auto", an installed but unusable meter is
// a warning in run's summary, in the aggregate and in `results show`; one unavailable on this
// hardware stays a quiet note.
func TestAutoMetersWarnAboutRefusedMeters(t *testing.T) {
	plugins := refusedPluginDir(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "experiment.toml")
	if err := os.WriteFile(cfg, []byte(experiment("refused", 1, "\n[energy]\nmeters = \"auto\"\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	res := filepath.Join(dir, "results")
	r := lemctl(t, nil, "run", cfg, "--plugin-dir", plugins, "--results-dir", res, "--progress", "quiet")
	if code := r.wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("run exited %d\nstderr:\n%s", code, r.stderr.String())
	}
	summary := r.stdout.String()
	var lines []string
	for _, l := range strings.Split(summary, "\n") {
		if strings.Contains(l, results.CodeMeterRefused) {
			lines = append(lines, l)
		}
	}
	checkRefused(t, "run summary", lines)
	if !strings.Contains(summary, "warning") {
		t.Errorf("run summary does not say warning:\n%s", summary)
	}
	exp := experimentID(t, res)
	checkRefused(t, "manifest", meterRefused(t, readManifest(t, res, exp).Findings))
	checkRefused(t, "aggregate", meterRefused(t, readAggregated(t, res, exp).Validity.Findings))

	show := lemctl(t, nil, "results", "show", exp, "--plugin-dir", plugins, "--results-dir", res)
	if code := show.wait(t, time.Minute); code != 0 {
		t.Fatalf("results show exited %d\n%s", code, show.stderr.String())
	}
	if n := strings.Count(show.stdout.String(), results.CodeMeterRefused); n != 2 {
		t.Errorf("results show names meter_refused %d times, want 2:\n%s", n, show.stdout.String())
	}
}

// TestMeasureWarnsAboutRefusedMeters: measure without --meter picks the meters like auto and
// reports the refused ones as warnings, in the table and in the JSON report.
func TestMeasureWarnsAboutRefusedMeters(t *testing.T) {
	plugins := refusedPluginDir(t)
	r := lemctl(t, nil, "measure", "--plugin-dir", plugins, "--", "true")
	if code := r.wait(t, time.Minute); code != 0 {
		t.Fatalf("measure exited %d\n%s", code, r.stderr.String())
	}
	var lines []string
	for _, l := range strings.Split(r.stderr.String(), "\n") {
		if strings.Contains(l, results.CodeMeterRefused) {
			lines = append(lines, l)
		}
	}
	checkRefused(t, "measure table", lines)

	r = lemctl(t, nil, "measure", "--plugin-dir", plugins, "-o", "json", "--", "true")
	if code := r.wait(t, time.Minute); code != 0 {
		t.Fatalf("measure -o json exited %d\n%s", code, r.stderr.String())
	}
	var rep measurecmd.Report
	if err := json.Unmarshal(r.stdout.Bytes(), &rep); err != nil {
		t.Fatalf("measure -o json: %v\n%s", err, r.stdout.String())
	}
	checkRefused(t, "measure json", meterRefused(t, rep.Validity.Findings))
	for _, d := range rep.Domains {
		if d.Plugin == "invfail" || d.Plugin == "invunavail" || d.Plugin == "crash" {
			t.Errorf("domain %s of a left-out meter %s is in the report", d.ID, d.Plugin)
		}
	}
}
