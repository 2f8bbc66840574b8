package config_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/config"
	"github.com/lemctl/lemctl/host/config/configtest"
)

const arrivalBase = "[model]\nref = \"synthetic:gpt2-tiny\"\n[workload]\nprompts = 4\n"

func loadArrival(t *testing.T, extra string) (*config.Config, error) {
	t.Helper()
	return config.Load(context.Background(), "a.toml", []byte(arrivalBase+extra), config.Options{Configurer: configtest.Standard()})
}

func TestArrivalKeys(t *testing.T) {
	cfg, err := loadArrival(t, "arrival = \"poisson\"\nrate = 4.0\nmax_concurrency = 3\nrequests = 40\n")
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.Workload
	if w.Arrival != "poisson" || w.Rate != 4 || w.MaxConcurrency != 3 || w.Requests != 40 || w.DurationS != 0 || !w.OpenLoop() {
		t.Fatalf("workload = %+v", w)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings: %q", cfg.Warnings)
	}
	if cfg.Validity.MaxErrorRate != 0.05 {
		t.Errorf("validity.max_error_rate default = %g, want 0.05", cfg.Validity.MaxErrorRate)
	}
	def, err := loadArrival(t, "")
	if err != nil {
		t.Fatal(err)
	}
	if def.Workload.Arrival != "batch" || def.Workload.OpenLoop() || def.Workload.MaxConcurrency != 8 {
		t.Fatalf("defaults = %+v", def.Workload)
	}
}

// errorsOf returns the messages of a config error, one per problem.
func errorsOf(t *testing.T, err error) []string {
	t.Helper()
	var es config.Errors
	if !errors.As(err, &es) {
		t.Fatalf("error %v is not config.Errors", err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Error())
	}
	return out
}

func TestArrivalValidation(t *testing.T) {
	cases := []struct {
		name, extra string
		want        []string // substrings of the one error
	}{
		{"rate required", "arrival = \"constant\"\n", []string{"workload.rate", "missing", "requests per second > 0"}},
		{"rate positive", "arrival = \"poisson\"\nrate = 0.0\n", []string{"workload.rate", "out of range"}},
		{"bad arrival", "arrival = \"burst\"\n", []string{"workload.arrival", `"burst" is not a valid value`, `"batch", "constant", "poisson"`}},
		{"requests and duration", "arrival = \"poisson\"\nrate = 2.0\nrequests = 10\nduration_s = 5.0\n", []string{"workload.duration_s", "not both", "remove workload.requests"}},
		{"concurrency at least 1", "arrival = \"poisson\"\nrate = 2.0\nmax_concurrency = 0\n", []string{"workload.max_concurrency", "out of range"}},
		{"error rate within 0..1", "[validity]\nmax_error_rate = 1.5\n", []string{"validity.max_error_rate", "out of range"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := loadArrival(t, c.extra)
			if err == nil {
				t.Fatal("loaded, want an error")
			}
			msgs := errorsOf(t, err)
			if len(msgs) != 1 {
				t.Fatalf("errors %q, want one", msgs)
			}
			for _, w := range c.want {
				if !strings.Contains(msgs[0], w) {
					t.Errorf("error %q does not say %q", msgs[0], w)
				}
			}
		})
	}
}

func TestArrivalIgnoredKeysWarn(t *testing.T) {
	cfg, err := loadArrival(t, "rate = 3.0\nmax_concurrency = 2\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 2 || !strings.Contains(cfg.Warnings[0], "workload.rate is ignored") || !strings.Contains(cfg.Warnings[1], "workload.max_concurrency is ignored") {
		t.Fatalf("warnings %q, want rate and max_concurrency ignored under arrival batch", cfg.Warnings)
	}
	cfg, err = loadArrival(t, "arrival = \"constant\"\nrate = 3.0\nbatch_size = 4\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], "workload.batch_size is ignored") {
		t.Fatalf("warnings %q, want batch_size ignored under arrival constant", cfg.Warnings)
	}
}

// A batch config hashes as it did before the arrival keys existed; an open-loop one hashes them.
func TestArrivalHash(t *testing.T) {
	batch, err := loadArrival(t, "")
	if err != nil {
		t.Fatal(err)
	}
	h := string(must(batch.CanonicalJSON()))
	for _, k := range []string{"arrival", "max_concurrency", "duration_s", "max_error_rate", `"requests"`} {
		if strings.Contains(h, k) {
			t.Errorf("a batch config's hash covers %s: %s", k, h)
		}
	}
	a, err := loadArrival(t, "arrival = \"poisson\"\nrate = 4.0\n")
	if err != nil {
		t.Fatal(err)
	}
	b, err := loadArrival(t, "arrival = \"poisson\"\nrate = 5.0\n")
	if err != nil {
		t.Fatal(err)
	}
	ha, _ := config.Hash(a)
	hb, _ := config.Hash(b)
	if ha == hb {
		t.Error("two rates hash the same")
	}
	if !strings.Contains(string(must(a.CanonicalJSON())), `"rate":4`) {
		t.Errorf("an open-loop hash does not cover the rate: %s", must(a.CanonicalJSON()))
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
