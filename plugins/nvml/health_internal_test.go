package nvml

import (
	"encoding/binary"
	"math"
	"os"
	"strings"
	"testing"

	nv "github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/lemctl/lemctl/sdk"
)

func TestProcTree(t *testing.T) {
	tree := newProcTree(os.DirFS("testdata/proc"), 100, 1)
	cases := []struct {
		pid          int
		own, visible bool
		name         string
	}{
		{100, true, true, "lemctl"},        // the root itself
		{200, true, true, "python3 (a) b"}, // a child, with parentheses in its name
		{250, true, true, "torch worker"},  // a grandchild
		{300, false, true, "other-job"},    // a sibling tree under init
		{400, false, false, ""},            // malformed stat: cannot be placed
		{999, false, false, ""},            // not in this PID namespace
		{1, false, false, ""},              // init is never a root unless allowed explicitly
	}
	for _, tc := range cases {
		own, visible := tree.own(tc.pid)
		if own != tc.own || visible != tc.visible {
			t.Errorf("pid %d: own=%v visible=%v, want %v %v", tc.pid, own, visible, tc.own, tc.visible)
		}
		if got := tree.name(tc.pid); got != tc.name {
			t.Errorf("pid %d: name %q, want %q", tc.pid, got, tc.name)
		}
	}
	tree.addRoot(300)
	if own, _ := tree.own(300); !own {
		t.Error("an allowed pid is not own")
	}
}

func TestHealthThrottle(t *testing.T) {
	g := &gpu{index: 3, uuid: "GPU-x"}
	cases := []struct {
		name    string
		reasons []uint64
		temps   []float64
		want    []string
	}{
		{"clean", []uint64{0, 1, 0}, []float64{50, 52, 55}, nil},
		{"idle and sync boost are not throttling", []uint64{0x1, 0x10, 0x2}, []float64{50, 50, 50}, nil},
		{"power cap", []uint64{0, 0x4, 0}, []float64{50, 51, 52}, []string{CodeThrottled}},
		{"hw thermal", []uint64{0x40, 0, 0}, []float64{50, 51, 52}, []string{CodeThrottled}},
		// temperature_drift is the host's (host/energy, validity.temperature_drift_c), not the meter's.
		{"a temperature drift is not the meter's to judge", []uint64{0, 0x20, 0}, []float64{40, 60, 70}, []string{CodeThrottled}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			de := &sdk.DomainEnergy{Domain: sdk.Domain{ID: "nvml:GPU-x", Method: sdk.MethodPowerIntegration, Available: true}}
			for i := range tc.reasons {
				de.Samples = append(de.Samples, sdk.Sample{MonoNS: int64(i), ClockEventReasons: tc.reasons[i], ReasonsRead: true, TemperatureC: tc.temps[i], PowerW: math.NaN()})
			}
			fs := health(de, &entry{id: de.Domain.ID, g: g}, &source{})
			var got []string
			for _, f := range fs {
				got = append(got, f.Code)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("findings %v, want %v", fs, tc.want)
			}
		})
	}
}

func TestFieldFloat(t *testing.T) {
	put := func(vt nv.ValueType, bits uint64) nv.FieldValue {
		f := nv.FieldValue{ValueType: uint32(vt)}
		binary.LittleEndian.PutUint64(f.Value[:], bits)
		return f
	}
	neg, neg32 := int64(-5), int32(-7)
	cases := []struct {
		f    nv.FieldValue
		want float64
		ok   bool
	}{
		{put(nv.VALUE_TYPE_UNSIGNED_INT, 312500), 312500, true},
		{put(nv.VALUE_TYPE_DOUBLE, math.Float64bits(1.5)), 1.5, true},
		{put(nv.VALUE_TYPE_UNSIGNED_LONG_LONG, 1<<40), 1 << 40, true},
		{put(nv.VALUE_TYPE_SIGNED_LONG_LONG, uint64(neg)), -5, true},
		{put(nv.VALUE_TYPE_SIGNED_INT, uint64(uint32(neg32))), -7, true},
		{put(nv.VALUE_TYPE_UNSIGNED_SHORT, 65535), 65535, true},
		{put(nv.VALUE_TYPE_COUNT, 1), 0, false},
	}
	for _, tc := range cases {
		got, ok := fieldFloat(tc.f)
		if got != tc.want || ok != tc.ok {
			t.Errorf("type %d: %v %v, want %v %v", tc.f.ValueType, got, ok, tc.want, tc.ok)
		}
	}
}
