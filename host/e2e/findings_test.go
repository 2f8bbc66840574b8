package e2e

import (
	"math"
	"strings"
	"testing"
	"time"
)

// nodeMeter simulates a whole-node meter (150 W) next to a package domain (40 W) it contains and
// a DRAM counter that never moves (a counter_stuck error in the domain's health).
const nodeMeter = `
[energy]
meters = ["example-meter"]

[energy.example-meter]
domains = ["example-node:node:node", "pkg:package:socket:40", "dead:dram:socket:0"]
power_w = 150.0
update_period = "10ms"
interval = "20ms"
`

// assertInOrder fails unless every line of want is in out, in this order.
func assertInOrder(t *testing.T, what, out string, want ...string) {
	t.Helper()
	at := 0
	for _, w := range want {
		i := strings.Index(out[at:], w)
		if i < 0 {
			t.Errorf("%s: missing (or out of order) %q in:\n%s", what, w, out)
			return
		}
		at += i + len(w)
	}
}

// The run's summary counts the node domain (not node + package), gives a J/token, names the set,
// says why the package is not added, and prints the stuck counter's error first; the aggregate
// is invalid like the raw result under it.
func TestRunNodeMeterAndDomainHealthInSummary(t *testing.T) {
	cfg := strings.Replace(experiment("node", 1, nodeMeter), "min_window_s = 0", "min_window_s = 2", 1)
	r, res := runExperiment(t, cfg, nil)
	if r.code != 0 {
		t.Fatalf("run exited %d\nstderr:\n%s", r.code, r.stderr.String())
	}
	exp := experimentID(t, res)
	raw, agg := readRaw(t, res, exp, 0), readAggregated(t, res, exp)
	if raw.Validity.Valid || agg.Validity.Valid {
		t.Errorf("valid: raw %v, aggregate %v; want both false (dead's counter_stuck is an error)", raw.Validity.Valid, agg.Validity.Valid)
	}
	if strings.Join(agg.Energy.CountedDomains, ",") != "example-node" || strings.Join(raw.Energy.CountedDomains, ",") != "example-node" {
		t.Errorf("counted_domains: raw %v, aggregate %v; want [example-node]", raw.Energy.CountedDomains, agg.Energy.CountedDomains)
	}
	union := *agg.Window.UnionS
	if agg.Energy.TotalJ == nil || math.Abs(*agg.Energy.TotalJ-150*union) > 2*0.010*150 || agg.Energy.JPerOutputToken == nil {
		t.Errorf("total_j %v over %.3f s, want 150 W × window (the node alone, never + the package); J/token %v",
			deref(agg.Energy.TotalJ), union, deref(agg.Energy.JPerOutputToken))
	}
	out := r.stdout.String()
	assertInOrder(t, "run summary", out,
		"J total (counted: example-node [node])",
		"J/output token",
		"INVALID (1 error(s)",
		"pkg: not in total: inside node domain example-node",
		"SEVERITY  CODE",
		"error     counter_stuck",
		"→ the counter is not updating",
		"warning ")
	if agg.Energy.CO2e != nil || raw.Energy.CO2e != nil || strings.Contains(out, "CO₂") {
		t.Errorf("no carbon intensity is configured, yet there is a CO₂ figure: %+v\n%s", agg.Energy.CO2e, out)
	}
	if strings.Contains(out, "no_energy_measured") || strings.Contains(out, "not measured") {
		t.Errorf("a measured node domain is reported as not measured:\n%s", out)
	}
}

// measure prints the same findings (the domain's health, errors first) and names the set.
func TestMeasurePrintsDomainHealth(t *testing.T) {
	r := lemctl(t, nil, "measure", "--plugin-dir", pluginDir, "--meter", "example-meter",
		"--set", `example-meter.domains=["example-node:node:node", "pkg:package:socket:40", "dead:dram:socket:0"]`,
		"--", "sleep", "1.5")
	if code := r.wait(t, time.Minute); code != 0 {
		t.Fatalf("measure exited %d\n%s", code, r.stderr.String())
	}
	assertInOrder(t, "measure (its table goes to stderr)", r.stderr.String(),
		"total (counted: example-node):",
		"validity: INVALID (1 error(s)",
		"SEVERITY  CODE",
		"error     counter_stuck            dead    counter never changed",
		"→ the counter is not updating",
		"warning   too_few_counter_updates  dead")
}
