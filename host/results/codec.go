package results

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Encode writes v as indented JSON with a trailing newline. Go's encoder sorts map keys, so the
// same value always gives the same bytes.
func Encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode result: %w", err)
	}
	return buf.Bytes(), nil
}

// EncodeRaw writes a raw result as compact JSON with a trailing newline. Raw results carry
// per-token timestamps and energy timelines, so they are stored without indentation (about half
// the size of Encode's output, and half the hashing and parsing work for aggregation);
// `lemctl results show --raw --output json` prints them indented.
func EncodeRaw(r *Raw) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, fmt.Errorf("encode raw result: %w", err)
	}
	return buf.Bytes(), nil
}

// DecodeRaw parses a raw result and checks its schema version and kind.
func DecodeRaw(data []byte) (*Raw, error) {
	var r Raw
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decode raw result: %w", err)
	}
	if err := checkHeader(r.SchemaVersion, r.Kind, KindRaw); err != nil {
		return nil, err
	}
	return &r, nil
}

// DecodeAggregated parses an aggregated result and checks its schema version and kind.
func DecodeAggregated(data []byte) (*Aggregated, error) {
	var a Aggregated
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("decode aggregated result: %w", err)
	}
	if err := checkHeader(a.SchemaVersion, a.Kind, KindAggregated); err != nil {
		return nil, err
	}
	return &a, nil
}

// DecodeManifest parses a run manifest and checks its schema version, kind and state.
func DecodeManifest(data []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("decode manifest: %w", err)
	}
	if err := checkHeader(m.SchemaVersion, m.Kind, KindManifest); err != nil {
		return nil, err
	}
	switch m.State {
	case StateRunning, StateCompleted, StateFailed, StateInterrupted:
	default:
		return nil, fmt.Errorf("manifest state %q: valid states are %q", m.State,
			[]string{StateRunning, StateCompleted, StateFailed, StateInterrupted})
	}
	return &m, nil
}

func checkHeader(version, kind, want string) error {
	if version != SchemaVersion {
		return fmt.Errorf("schema_version %q: this lemctl reads schema version %q", version, SchemaVersion)
	}
	if kind != want {
		return fmt.Errorf("kind %q: want %q", kind, want)
	}
	return nil
}

// Float returns a pointer to v, for the nullable figures.
func Float(v float64) *float64 { return &v }

// Int64 returns a pointer to v.
func Int64(v int64) *int64 { return &v }

// IntPtr returns a pointer to v.
func IntPtr(v int) *int { return &v }

// Uint64 returns a pointer to v.
func Uint64(v uint64) *uint64 { return &v }

// Ratio returns num ÷ den, or nil when den is not positive (a figure that cannot be computed is
// null, never 0 or infinity).
func Ratio(num, den float64) *float64 {
	if !(den > 0) {
		return nil
	}
	return Float(num / den)
}
