package results

import (
	"bytes"
	"strings"
	"testing"
)

func TestDecodeChecksHeader(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"not json", `{`, "decode raw result"},
		{"other schema", `{"schema_version":"2","kind":"raw"}`, `schema_version "2": this lemctl reads schema version "1"`},
		{"other kind", `{"schema_version":"1","kind":"aggregated"}`, `kind "aggregated": want "raw"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeRaw([]byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("DecodeRaw(%s) = %v, want an error containing %q", tc.doc, err, tc.want)
			}
		})
	}
	if _, err := DecodeManifest([]byte(`{"schema_version":"1","kind":"manifest","state":"done"}`)); err == nil ||
		!strings.Contains(err.Error(), `manifest state "done": valid states are`) {
		t.Errorf("DecodeManifest with a bad state: %v", err)
	}
	if _, err := DecodeAggregated([]byte(`{"schema_version":"1","kind":"aggregated"}`)); err != nil {
		t.Errorf("DecodeAggregated: %v", err)
	}
}

// A figure that was not measured is null in JSON, never 0.
func TestUnmeasuredIsNull(t *testing.T) {
	r := &Raw{SchemaVersion: SchemaVersion, Kind: KindRaw, Energy: Energy{Domains: []Domain{{ID: "gpu0", Kind: "gpu", Reason: "no NVML"}}}}
	for _, enc := range []func() ([]byte, error){func() ([]byte, error) { return Encode(r) }, func() ([]byte, error) { return EncodeRaw(r) }} {
		b, err := enc()
		if err != nil {
			t.Fatal(err)
		}
		compact := bytes.ReplaceAll(bytes.ReplaceAll(b, []byte(" "), nil), []byte("\n"), nil)
		for _, want := range []string{`"total_j":null`, `"j_per_output_token":null`, `"mean":null`, `"p99":null`,
			`"peak_bytes":null`, `"meter_cpu_s":null`, `"output_tokens_per_s":null`, `"idle_power_w":null`, `"prefill_j":null`, `"parameters":null`} {
			if !bytes.Contains(compact, []byte(want)) {
				t.Errorf("encoded raw lacks %s", want)
			}
		}
		back, err := DecodeRaw(b)
		if err != nil || back.Energy.TotalJ != nil || back.Energy.Domains[0].Reason != "no NVML" {
			t.Errorf("round trip: %+v, %v", back, err)
		}
	}
	if Ratio(1, 0) != nil || *Ratio(1, 4) != 0.25 {
		t.Error("Ratio must be null for a zero denominator")
	}
}
