package energy

import (
	"math"
	"testing"

	"github.com/lemctl/lemctl/host/results"
)

func TestCO2eFromTheUsersIntensity(t *testing.T) {
	// 3.6 MJ is 1 kWh: at 400 g/kWh, 400 g.
	c := CO2e(results.Float(3.6e6), 8, 1000, 400, "grid operator 2025 annual mean")
	if c == nil || math.Abs(*c.G-400) > 1e-9 {
		t.Fatalf("CO2e(3.6 MJ, 400 g/kWh) = %+v, want 400 g", c)
	}
	if math.Abs(*c.GPerRequest-50) > 1e-9 || math.Abs(*c.GPerOutputToken-0.4) > 1e-9 {
		t.Errorf("per request %v per output token %v, want 50 and 0.4", *c.GPerRequest, *c.GPerOutputToken)
	}
	if c.IntensityGPerKWh != 400 || c.Source != "grid operator 2025 annual mean" {
		t.Errorf("intensity and source not recorded: %+v", c)
	}
	if c := CO2e(results.Float(1.8e6), 0, 0, 100, ""); c == nil || math.Abs(*c.G-50) > 1e-9 || c.GPerRequest != nil || c.GPerOutputToken != nil || c.Source != SourceNotStated {
		t.Errorf("CO2e(1.8 MJ, 100 g/kWh, no requests, no source) = %+v, want 50 g, null ratios, source not stated", c)
	}
	if c := CO2e(nil, 8, 1000, 400, "x"); c != nil {
		t.Errorf("no energy measured must give no CO₂ figure, got %+v", c)
	}
}
