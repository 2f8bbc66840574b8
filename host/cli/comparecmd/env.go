package comparecmd

import (
	"fmt"
	"slices"
	"strings"

	"github.com/lemctl/lemctl/host/results"
)

// EnvDiff is one thing that differs between A's environment and B's.
type EnvDiff struct {
	What string `json:"what"`
	A    string `json:"a"`
	B    string `json:"b"`
}

const envLemctl = "lemctl version"

// EnvOf is what compare checks of an experiment's environment, by label: lemctl's version, the
// engine, the devices, the host's CPU, kernel and governor, every driver version and every
// power limit the meters report (a fact of several devices or hosts lists their distinct values).
func EnvOf(a *results.Aggregated) map[string]string {
	env := map[string]string{
		envLemctl:            a.Provenance.LemctlVersion,
		"engine":             strings.TrimSpace(a.Engine.Plugin + " " + a.Engine.Version),
		"execution provider": a.Engine.ExecutionProvider,
	}
	var devs []string
	for _, s := range a.Devices {
		name := s.Device.Name
		if name == "" {
			name = "unnamed"
		}
		devs = append(devs, s.Device.Kind+" "+name)
	}
	slices.Sort(devs)
	env["devices"] = strings.Join(devs, ", ")
	facts := map[string][]string{}
	add := func(label, v string) {
		if !slices.Contains(facts[label], v) {
			facts[label] = append(facts[label], v)
		}
	}
	for _, h := range a.Environment.Hosts {
		for k, v := range h.Facts {
			switch {
			case k == "cpu_model" || k == "kernel" || k == "governor":
				add("host "+k, v)
			case strings.Contains(k, "driver") || strings.Contains(k, "power_limit"):
				add(k, v)
			}
		}
		for _, d := range h.Devices {
			for k, v := range d.Facts {
				if strings.Contains(k, "driver") || strings.Contains(k, "power_limit") {
					add("device "+k, v)
				}
			}
		}
	}
	for k, vs := range facts {
		slices.Sort(vs)
		env[k] = strings.Join(vs, ", ")
	}
	return env
}

// EnvDiffs lists, by label, what differs between a and b ("absent" for a label one side lacks).
func EnvDiffs(a, b map[string]string) []EnvDiff {
	out := []EnvDiff{}
	var labels []string
	for k := range a {
		labels = append(labels, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			labels = append(labels, k)
		}
	}
	slices.Sort(labels)
	val := func(m map[string]string, k string) string {
		v, ok := m[k]
		if !ok {
			return "absent"
		}
		if v == "" {
			return "unknown"
		}
		return v
	}
	for _, k := range labels {
		if va, vb := val(a, k), val(b, k); va != vb {
			out = append(out, EnvDiff{What: k, A: va, B: vb})
		}
	}
	return out
}

func (d EnvDiff) String() string { return fmt.Sprintf("%s: A %s, B %s", d.What, d.A, d.B) }
