package config

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Devices is launch.devices: the single entry "cpu", or accelerators that an energy plugin's
// inventory reports, by index in that inventory ("0") or by device id ("GPU-…", "acme0").
type Devices []string

// IsCPU reports whether the workers run on the CPU.
func (d Devices) IsCPU() bool { return len(d) == 1 && d[0] == "cpu" }

// MarshalJSON writes "cpu" or a list of device indices (numbers) and device ids (strings).
func (d Devices) MarshalJSON() ([]byte, error) { return json.Marshal(d.value()) }

// value is the canonical TOML/JSON value: "cpu", or []any of int64 indices and string ids.
func (d Devices) value() any {
	if d.IsCPU() || len(d) == 0 {
		return "cpu"
	}
	out := make([]any, len(d))
	for i, s := range d {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			out[i] = n
		} else {
			out[i] = s
		}
	}
	return out
}

// UnmarshalJSON reads what MarshalJSON writes.
func (d *Devices) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch v := v.(type) {
	case string:
		*d = Devices{v}
	case []any:
		out := make(Devices, len(v))
		for i, e := range v {
			switch e := e.(type) {
			case float64:
				out[i] = strconv.FormatInt(int64(e), 10)
			case string:
				out[i] = e
			default:
				return fmt.Errorf("devices: element %d is %T", i, e)
			}
		}
		*d = out
	default:
		return fmt.Errorf("devices: %T is neither \"cpu\" nor a list", v)
	}
	return nil
}

// Meters is energy.meters: Auto, or the named plugins (possibly none).
type Meters struct {
	Auto  bool
	Names []string
}

func (m Meters) value() any {
	if m.Auto {
		return "auto"
	}
	out := make([]any, len(m.Names))
	for i, n := range m.Names {
		out[i] = n
	}
	return out
}

// MarshalJSON writes "auto" or the list of names.
func (m Meters) MarshalJSON() ([]byte, error) { return json.Marshal(m.value()) }

// UnmarshalJSON reads what MarshalJSON writes.
func (m *Meters) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch v := v.(type) {
	case string:
		if v != "auto" {
			return fmt.Errorf("meters: %q is neither \"auto\" nor a list", v)
		}
		*m = Meters{Auto: true}
	case []any:
		names := make([]string, 0, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("meters: element %d is %T", i, e)
			}
			names = append(names, s)
		}
		*m = Meters{Names: names}
	default:
		return fmt.Errorf("meters: %T is neither \"auto\" nor a list", v)
	}
	return nil
}
