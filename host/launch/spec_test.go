package launch

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWriteSpecRoundTripsAtomically: a written spec reads back equal, with mode 0600 and no
// temporary file beside it.
func TestWriteSpecRoundTripsAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "worker_1.spec.json")
	in := &Spec{ExperimentID: "e", Rank: 1, WorldSize: 2, Device: DeviceSlot{Kind: "cpu", Index: -1, Slot: "cpu:1"}}
	if err := WriteSpec(path, in); err != nil {
		t.Fatal(err)
	}
	out, err := ReadSpec(path)
	if err != nil || out.ExperimentID != "e" || out.Rank != 1 || out.Device.Slot != "cpu:1" {
		t.Fatalf("ReadSpec = %+v, %v", out, err)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("spec mode %v (%v), want 0600", info.Mode(), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("run directory holds %v, want the spec alone", ents)
	}
}
