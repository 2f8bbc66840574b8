package hostclient

import (
	"testing"

	energyv1 "github.com/lemctl/lemctl/sdk/proto/lem/energy/v1"
)

func TestSampleReasonsReadOnlyWhenSent(t *testing.T) {
	if s := sampleFromProto(&energyv1.Sample{MonoNs: 1}); s.ReasonsRead || s.ClockEventReasons != 0 {
		t.Errorf("a sample without reasons decoded as read: %+v", s)
	}
	v := uint64(0x40)
	if s := sampleFromProto(&energyv1.Sample{MonoNs: 1, ClockEventReasons: &v}); !s.ReasonsRead || s.ClockEventReasons != 0x40 {
		t.Errorf("a sample with reasons 0x40 decoded as %+v", s)
	}
}
