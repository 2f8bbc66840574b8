package energy

import (
	"github.com/lemctl/lemctl/host/results"
)

// JoulesPerKWh is the number of joules in one kilowatt-hour.
const JoulesPerKWh = 3.6e6

// SourceNotStated is the source recorded with a carbon intensity the user gave without one.
const SourceNotStated = "not stated (set energy.carbon_intensity_source)"

// CO2e converts the total energy of a result with the user's carbon intensity (g CO₂e per kWh):
// grams = J ÷ 3.6e6 × intensity, in total, per request and per output token. It returns nil when
// there is no total (no energy measured): lemctl never shows a CO₂ figure it cannot back. The
// intensity and its source are recorded as given ("" becomes SourceNotStated).
func CO2e(totalJ *float64, requests, outputTokens int64, gPerKWh float64, source string) *results.CO2e {
	if totalJ == nil {
		return nil
	}
	if source == "" {
		source = SourceNotStated
	}
	g := *totalJ / JoulesPerKWh * gPerKWh
	return &results.CO2e{G: results.Float(g), GPerRequest: results.Ratio(g, float64(requests)),
		GPerOutputToken: results.Ratio(g, float64(outputTokens)), IntensityGPerKWh: gPerKWh, Source: source}
}
