package fakesys

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestValue checks the counter at chosen instants: linear in time, wrapping modulo range + 1,
// and restarting from ResetTo after ResetAfter.
func TestValue(t *testing.T) {
	z := Zone{Dir: "intel-rapl:0", Name: "package-0", Watts: 10, Range: 999, Start: 900, ResetAfter: time.Second, ResetTo: 5}
	tree := &Tree{t0: 1_000_000_000, resetNS: map[string]int64{}}
	// 10 W is 10 µJ per µs; the modulus is range + 1 = 1000.
	tests := []struct {
		after time.Duration
		want  uint64
	}{
		{0, 900},
		{5 * time.Microsecond, 950},
		{10 * time.Microsecond, 0}, // 1000 wraps to 0
		{15 * time.Microsecond, 50},
		{time.Second, 5},                     // the reset
		{time.Second + time.Microsecond, 15}, // 5 + 10 µJ after it
	}
	for _, tc := range tests {
		if got := tree.value(z, tree.t0+int64(tc.after)); got != tc.want {
			t.Errorf("value after %v = %d, want %d", tc.after, got, tc.want)
		}
	}
}

func TestTree(t *testing.T) {
	root := t.TempDir()
	tree, err := New(root, Zone{Dir: "intel-rapl:0", Name: "package-0", Watts: 1000, Range: 1000, MaxPower: 5_000_000})
	if err != nil {
		t.Fatal(err)
	}
	tree.Run(time.Millisecond)
	// 1 kW against a 1 mJ range wraps every millisecond: wait for the writer's first ticks (a
	// fixed 20 ms sleep saw none when a busy machine starved the writer).
	for deadline := time.Now().Add(30 * time.Second); tree.Wraps("intel-rapl:0") == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if err := tree.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := tree.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if tree.Wraps("intel-rapl:0") == 0 {
		t.Error("no wrap recorded")
	}
	for name, want := range map[string]string{"name": "package-0", "max_energy_range_uj": "1000", "constraint_0_max_power_uw": "5000000"} {
		b, err := os.ReadFile(filepath.Join(root, "class/powercap/intel-rapl:0", name))
		if err != nil || strings.TrimSpace(string(b)) != want {
			t.Errorf("%s = %q, %v; want %s", name, b, err, want)
		}
	}
	if _, err := New(root, Zone{Dir: "intel-rapl:1", Name: "package-1"}); err == nil {
		t.Error("a zone without a range was accepted")
	}
}
