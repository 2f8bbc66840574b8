package energy

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/lemctl/lemctl/host/config"
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/units"
)

// constant returns a domain sampled every step from t0 to t1 at watts, cumulative from t0.
func constant(id, kind string, watts float64, t0, t1 int64, step time.Duration) sdk.DomainEnergy {
	d := sdk.DomainEnergy{Domain: sdk.Domain{ID: id, Kind: kind, Scope: sdk.ScopeDevice, Method: sdk.MethodCounter, Available: true,
		Resolution: units.Microjoule, UpdatePeriod: step}}
	for t := t0; t <= t1; t += int64(step) {
		d.Samples = append(d.Samples, sdk.Sample{MonoNS: t, Energy: units.Energy(math.Round(watts * float64(t-t0) / 1e3)),
			PowerW: watts, TemperatureC: math.NaN()})
	}
	d.Energy = d.Samples[len(d.Samples)-1].Energy
	return d
}

const sec = int64(time.Second)

func TestAtInterpolatesAndNeverExtrapolates(t *testing.T) {
	d := constant("g", sdk.DomainGPU, 100, 0, 10*sec, 100*time.Millisecond)
	e, gap, ok := At(d.Samples, 2*sec+50*int64(time.Millisecond))
	if !ok || math.Abs(e-205e6) > 1 || gap != 50*time.Millisecond {
		t.Errorf("At(2.05 s) = %v µJ gap %v ok %v, want 205 J, 50 ms", e, gap, ok)
	}
	if _, _, ok := At(d.Samples, 11*sec); ok {
		t.Error("At past the last sample must not extrapolate")
	}
}

func TestComputeStaticDynamicAndTotals(t *testing.T) {
	gpu := constant("gpu0", sdk.DomainGPU, 300, 0, 20*sec, 100*time.Millisecond)
	pkg := constant("pkg0", sdk.DomainPackage, 50, 0, 20*sec, 10*time.Millisecond)
	core := constant("core0", sdk.DomainCore, 30, 0, 20*sec, 10*time.Millisecond)
	m := &sdk.Measurement{Domains: []sdk.DomainEnergy{gpu, pkg, core}}
	win := Interval{2 * sec, 12 * sec}
	e, findings := Compute(Input{Measurements: []*sdk.Measurement{m}, Window: win,
		IdlePowerW: map[string]float64{"gpu0": 60, "pkg0": 20, "core0": 5},
		Prefill:    []Interval{{2 * sec, 3 * sec}}, Decode: []Interval{{3 * sec, 12 * sec}},
		OutputTokens: 1000, Requests: 10})
	approx := func(name string, got *float64, want float64) {
		t.Helper()
		if got == nil || math.Abs(*got-want) > 1e-6*math.Max(1, want) {
			t.Errorf("%s = %v, want %v", name, deref(got), want)
		}
	}
	approx("total_j (gpu+package, not core)", e.TotalJ, 3000+500)
	approx("static_j", e.StaticJ, 600+200)
	approx("dynamic_j", e.DynamicJ, 2400+300)
	approx("j_per_output_token", e.JPerOutputToken, 3.5)
	approx("dynamic_j_per_output_token", e.DynamicJPerOutputToken, 2.7)
	approx("j_per_request", e.JPerRequest, 350)
	approx("tokens_per_j", e.TokensPerJ, 1000.0/3500)
	approx("prefill_j", e.Phases.PrefillJ, 300+50)
	approx("decode_j", e.Phases.DecodeJ, 2700+450)
	approx("core total (detail only)", e.Domains[2].TotalJ, 300)
	approx("gpu edge gap (edges fall on samples)", e.Domains[0].EdgeGapS, 0)
	approx("gpu quantisation (2 × 100 ms × 300 W)", e.Domains[0].QuantisationJ, 60)
	if len(findings) != 0 {
		t.Errorf("unexpected findings %v", findings)
	}
}

func TestComputeFindings(t *testing.T) {
	gpu := constant("gpu0", sdk.DomainGPU, 100, 0, 5*sec, time.Second) // 4 updates in the window
	est := constant("est", sdk.DomainPackage, 10, 0, 5*sec, 10*time.Millisecond)
	est.Domain.Method, est.Domain.Confidence = sdk.MethodEstimate, sdk.ConfidenceEstimate
	m := &sdk.Measurement{Domains: []sdk.DomainEnergy{gpu, est}}
	win := Interval{0, 5 * sec}
	_, findings := Compute(Input{Measurements: []*sdk.Measurement{m}, Window: win, IdlePowerW: map[string]float64{"gpu0": 150, "est": 1}, Thresholds: defaults()})
	want := map[string]bool{"too_few_counter_updates": false, "energy_estimated": false, "dynamic_negative": false}
	for _, f := range findings {
		if _, ok := want[f.Code]; ok {
			want[f.Code] = true
		}
	}
	for code, seen := range want {
		if !seen {
			t.Errorf("finding %s not raised (got %v)", code, findings)
		}
	}
	_, findings = Compute(Input{Measurements: []*sdk.Measurement{m}, Window: win})
	if !has(findings, "baseline_missing") {
		t.Errorf("baseline_missing not raised: %v", findings)
	}
	if _, findings = Compute(Input{Measurements: []*sdk.Measurement{m}, Window: win, NoBaseline: true}); has(findings, "baseline_missing") {
		t.Errorf("baseline_missing raised for a caller with no baseline by design: %v", findings)
	}
	un := sdk.DomainEnergy{Domain: sdk.Domain{ID: "rapl", Kind: sdk.DomainPackage, Reason: "no /sys/class/powercap"}}
	e, findings := Compute(Input{Measurements: []*sdk.Measurement{{Domains: []sdk.DomainEnergy{un}}}, Window: win})
	if !has(findings, "no_energy_measured") || e.TotalJ != nil || e.UnavailableDomainsCount != 1 {
		t.Errorf("no_energy_measured: total %v, findings %v", e.TotalJ, findings)
	}
	if f := WindowFindings(Interval{0, 9 * sec}, Thresholds{MinWindowS: 10}); len(f) != 1 || f[0].Code != "window_too_short" {
		t.Errorf("window_too_short not raised: %v", f)
	}
	if f := WindowFindings(Interval{0, 10 * sec}, Thresholds{}); len(f) != 0 {
		t.Errorf("a 10 s window raised %v", f)
	}
}

func TestIdlePowers(t *testing.T) {
	d := constant("g", sdk.DomainGPU, 42, 5*sec, 15*sec, 100*time.Millisecond)
	p := IdlePowers(&sdk.Measurement{Domains: []sdk.DomainEnergy{d}})
	if math.Abs(p["g"]-42) > 1e-6 {
		t.Errorf("idle power = %v, want 42 W", p["g"])
	}
}

func has(fs []results.Finding, code string) bool {
	for _, f := range fs {
		if f.Code == code {
			return true
		}
	}
	return false
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestCountedBetween(t *testing.T) {
	gpu := constant("gpu0", sdk.DomainGPU, 300, 0, 10*sec, 100*time.Millisecond)
	core := constant("core0", sdk.DomainCore, 30, 0, 10*sec, 10*time.Millisecond)
	ms := []*sdk.Measurement{{Domains: []sdk.DomainEnergy{gpu, core}}, {Domains: []sdk.DomainEnergy{gpu}}}
	got := CountedBetween(ms, Interval{2 * sec, 4 * sec}, []string{"gpu0"})
	if got == nil || math.Abs(*got-600) > 1e-6 {
		t.Errorf("CountedBetween = %v, want 600 J (the GPU once, never the core)", deref(got))
	}
	if CountedBetween([]*sdk.Measurement{{Domains: []sdk.DomainEnergy{core}}}, Interval{2 * sec, 4 * sec}, nil) != nil {
		t.Error("with no counted domain the energy must be nil, not 0")
	}
}

func TestCountedSet(t *testing.T) {
	type m = Measured
	cases := []struct {
		name       string
		in         []Measured
		counted    string
		notCounted map[string]string // id → a word the reason must contain
	}{
		{"node alone", []m{{"n", "node"}}, "n", nil},
		{"node contains package, dram and gpu", []m{{"pkg", "package"}, {"n", "node"}, {"d", "dram"}, {"g", "gpu"}}, "n",
			map[string]string{"pkg": "inside node domain n", "d": "inside node domain n", "g": "inside node domain n"}},
		{"two node meters: the lowest id, never both", []m{{"pdu", "node"}, {"bmc", "node"}}, "bmc", map[string]string{"pdu": "another node domain, bmc"}},
		{"components without a node", []m{{"g", "gpu"}, {"pkg", "package"}, {"d", "dram"}, {"c", "core"}, {"p", "psys"}}, "g,pkg,d",
			map[string]string{"c": "nested", "p": "psys contains"}},
		{"other alone", []m{{"o", "other"}}, "o", nil},
		{"other beside components", []m{{"o", "other"}, {"pkg", "package"}}, "pkg", map[string]string{"o": "kind other"}},
		{"other beside a node", []m{{"o", "other"}, {"n", "node"}}, "n", map[string]string{"o": "inside node domain n"}},
		{"two others: one", []m{{"y", "other"}, {"x", "other"}}, "x", map[string]string{"y": "another other domain, x"}},
		{"nested only", []m{{"c", "core"}}, "", map[string]string{"c": "nested"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			counted, why := CountedSet(tc.in)
			if got := strings.Join(counted, ","); got != tc.counted {
				t.Errorf("counted = %q, want %q", got, tc.counted)
			}
			if len(why) != len(tc.notCounted) {
				t.Errorf("not counted = %v, want the ids of %v", why, tc.notCounted)
			}
			for id, word := range tc.notCounted {
				if !strings.Contains(why[id], word) {
					t.Errorf("why %s is not counted = %q, want it to say %q", id, why[id], word)
				}
			}
		})
	}
}

// A whole-node meter alone is a measurement: total_j and J/token come from it, and the result
// names the set it used.
func TestComputeNodeDomainAlone(t *testing.T) {
	node := constant("example-node", sdk.DomainNode, 150, 0, 20*sec, 10*time.Millisecond)
	e, findings := Compute(Input{Measurements: []*sdk.Measurement{{Domains: []sdk.DomainEnergy{node}}}, Window: Interval{2 * sec, 12 * sec},
		OutputTokens: 1000, Requests: 10, NoBaseline: true})
	if e.TotalJ == nil || math.Abs(*e.TotalJ-1500) > 1e-6 || e.JPerOutputToken == nil || math.Abs(*e.JPerOutputToken-1.5) > 1e-9 {
		t.Errorf("total_j = %v, j_per_output_token = %v, want 1500 J and 1.5 J/token", deref(e.TotalJ), deref(e.JPerOutputToken))
	}
	if strings.Join(e.CountedDomains, ",") != "example-node" || strings.Join(e.CountedDomainKinds, ",") != "node" || !e.Domains[0].Counted {
		t.Errorf("counted_domains = %v, kinds = %v, domain counted = %v; want the node domain", e.CountedDomains, e.CountedDomainKinds, e.Domains[0].Counted)
	}
	if has(findings, "no_energy_measured") {
		t.Errorf("a measured node domain must not give no_energy_measured: %+v", findings)
	}
}

// Node and package on one host: the node is the wider set; the package is reported but never
// added to it, and a repeat's energy uses the same set.
func TestComputeNodeContainsPackage(t *testing.T) {
	node := constant("n", sdk.DomainNode, 150, 0, 20*sec, 10*time.Millisecond)
	pkg := constant("pkg", sdk.DomainPackage, 40, 0, 20*sec, 10*time.Millisecond)
	ms := []*sdk.Measurement{{Domains: []sdk.DomainEnergy{pkg, node}}}
	e, _ := Compute(Input{Measurements: ms, Window: Interval{2 * sec, 12 * sec}, OutputTokens: 100, NoBaseline: true})
	if e.TotalJ == nil || math.Abs(*e.TotalJ-1500) > 1e-6 {
		t.Errorf("total_j = %v, want 1500 J (the node alone, not node + package = 1900 J)", deref(e.TotalJ))
	}
	if strings.Join(e.CountedDomains, ",") != "n" {
		t.Errorf("counted_domains = %v, want [n]", e.CountedDomains)
	}
	for _, d := range e.Domains {
		if d.ID == "pkg" && (d.Counted || d.TotalJ == nil || !strings.Contains(d.NotCounted, "inside node domain n")) {
			t.Errorf("package: counted %v, total %v, not_counted %q; want reported, not counted, inside n", d.Counted, deref(d.TotalJ), d.NotCounted)
		}
	}
	if got := CountedBetween(ms, Interval{2 * sec, 4 * sec}, e.CountedDomains); got == nil || math.Abs(*got-300) > 1e-6 {
		t.Errorf("repeat energy = %v, want 300 J (the node's)", deref(got))
	}
}

// defaults are the thresholds of the schema's [validity] defaults.
func defaults() Thresholds {
	v := config.DefaultValidity()
	return Thresholds{MinWindowS: v.MinWindowS, MinCounterUpdates: v.MinCounterUpdates, TemperatureDriftC: v.TemperatureDriftC, IntegrationMismatch: v.IntegrationMismatch}
}

func codes(fs []results.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Code)
	}
	return out
}

// TestZeroMeansNoMinimum: validity.min_window_s = 0 and min_counter_updates = 0 mean no minimum
// (docs/config.md); the defaults (10 s, 10 updates) raise the findings on the same window.
func TestZeroMeansNoMinimum(t *testing.T) {
	win := Interval{0, 5 * sec}
	gpu := constant("gpu0", sdk.DomainGPU, 100, 0, 5*sec, time.Second) // 5 updates in the window
	m := []*sdk.Measurement{{Domains: []sdk.DomainEnergy{gpu}}}
	zero := defaults()
	zero.MinWindowS, zero.MinCounterUpdates = 0, 0
	for _, tc := range []struct {
		name string
		th   Thresholds
		want bool
	}{{"defaults", defaults(), true}, {"zero", zero, false}} {
		_, fs := Compute(Input{Measurements: m, Window: win, NoBaseline: true, Thresholds: tc.th})
		fs = append(fs, WindowFindings(win, tc.th)...)
		if has(fs, "window_too_short") != tc.want || has(fs, "too_few_counter_updates") != tc.want {
			t.Errorf("%s: findings %v, want window_too_short and too_few_counter_updates = %v", tc.name, codes(fs), tc.want)
		}
	}
}

// TestTemperatureDriftThreshold: validity.temperature_drift_c decides temperature_drift over the
// temperatures read inside the window (a hot sample after the window does not count).
func TestTemperatureDriftThreshold(t *testing.T) {
	gpu := constant("gpu0", sdk.DomainGPU, 100, 0, 20*sec, 100*time.Millisecond)
	for i := range gpu.Samples {
		switch ts := gpu.Samples[i].MonoNS; {
		case ts > 12*sec:
			gpu.Samples[i].TemperatureC = 90 // after the window
		case i%10 == 0:
			gpu.Samples[i].TemperatureC = 40 + 12*float64(ts)/float64(12*sec) // 40 → 52 °C; NaN in between
		}
	}
	m := []*sdk.Measurement{{Domains: []sdk.DomainEnergy{gpu}}}
	for _, tc := range []struct {
		limit float64
		want  bool
	}{{10, true}, {15, false}} {
		th := defaults()
		th.TemperatureDriftC = tc.limit
		_, fs := Compute(Input{Measurements: m, Window: Interval{0, 12 * sec}, NoBaseline: true, Thresholds: th})
		if has(fs, CodeTemperatureDrift) != tc.want {
			t.Errorf("temperature_drift_c = %g: findings %v, want temperature_drift = %v", tc.limit, codes(fs), tc.want)
		}
		for _, f := range fs {
			if f.Code == CodeTemperatureDrift && (f.Domain != "gpu0" || !strings.Contains(f.Message, "40 to 52 °C")) {
				t.Errorf("finding %+v", f)
			}
		}
	}
}

// TestIntegrationMismatchThreshold: validity.integration_mismatch decides
// counter_integration_mismatch; a counter 30 % below its instant power raises it at 0.10, not at 0.5.
func TestIntegrationMismatchThreshold(t *testing.T) {
	gpu := constant("gpu0", sdk.DomainGPU, 210, 0, 10*sec, 100*time.Millisecond)
	for i := range gpu.Samples {
		gpu.Samples[i].PowerW = 300
	}
	m := []*sdk.Measurement{{Domains: []sdk.DomainEnergy{gpu}}}
	for _, tc := range []struct {
		share float64
		want  bool
	}{{0.10, true}, {0.5, false}} {
		th := defaults()
		th.IntegrationMismatch = tc.share
		_, fs := Compute(Input{Measurements: m, Window: Interval{0, 10 * sec}, NoBaseline: true, Thresholds: th})
		if has(fs, CodeMismatch) != tc.want {
			t.Errorf("integration_mismatch = %g: findings %v, want counter_integration_mismatch = %v", tc.share, codes(fs), tc.want)
		}
	}
}

// stepped returns n samples every interval of a counter that updates every update period at
// counterW, with instant power powerW.
func stepped(n int, interval, update time.Duration, counterW, powerW float64) []sdk.Sample {
	var out []sdk.Sample
	for i := 0; i < n; i++ {
		t := time.Duration(i) * interval
		tick := t / update * update
		out = append(out, sdk.Sample{MonoNS: int64(t), Energy: units.EnergyFromJoules(counterW * tick.Seconds()),
			PowerW: powerW, TemperatureC: math.NaN()})
	}
	return out
}

func TestMismatch(t *testing.T) {
	dom := sdk.Domain{ID: "nvml:GPU-x", Method: sdk.MethodCounter, UpdatePeriod: 100 * time.Millisecond, Available: true}
	cases := []struct {
		name    string
		samples []sdk.Sample
		raise   bool
	}{
		{"agree", stepped(50, 100*time.Millisecond, 100*time.Millisecond, 300, 300), false},
		{"agree at 10 ms sampling", stepped(500, 10*time.Millisecond, 100*time.Millisecond, 300, 300), false},
		{"counter 8 % low: within 10 %", stepped(50, 100*time.Millisecond, 100*time.Millisecond, 276, 300), false},
		{"counter 30 % low", stepped(50, 100*time.Millisecond, 100*time.Millisecond, 210, 300), true},
		{"counter 30 % high", stepped(50, 100*time.Millisecond, 100*time.Millisecond, 390, 300), true},
		{"too short to judge", stepped(3, 100*time.Millisecond, 100*time.Millisecond, 150, 300), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := mismatch(dom, tc.samples, 0.10)
			if (f != nil) != tc.raise {
				t.Fatalf("finding %+v, want raised=%v", f, tc.raise)
			}
			if f != nil && (f.Code != CodeMismatch || f.Domain != dom.ID) {
				t.Errorf("finding %+v", f)
			}
		})
	}
	// Without instant power there is no independent check.
	s := stepped(50, 100*time.Millisecond, 100*time.Millisecond, 100, 300)
	for i := range s {
		s[i].PowerW = math.NaN()
	}
	if f := mismatch(dom, s, 0.10); f != nil {
		t.Errorf("raised without instant power: %+v", f)
	}
}
