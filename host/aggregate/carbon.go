package aggregate

import "encoding/json"

// carbonIntensity reads energy.carbon_intensity_g_per_kwh and its source from a result's recorded
// config (the canonical config, overrides applied); ok is false when none was configured.
func carbonIntensity(cfg json.RawMessage) (gPerKWh float64, source string, ok bool) {
	var c struct {
		Energy struct {
			GPerKWh *float64 `json:"carbon_intensity_g_per_kwh"`
			Source  string   `json:"carbon_intensity_source"`
		} `json:"energy"`
	}
	if json.Unmarshal(cfg, &c) != nil || c.Energy.GPerKWh == nil {
		return 0, "", false
	}
	return *c.Energy.GPerKWh, c.Energy.Source, true
}
