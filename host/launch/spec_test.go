package launch

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
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

// TestWorkerEnvIsExactlyTheDeviceEnv: a worker on an accelerator gets exactly the visibility
// environment its meter gave (no vendor's variable is added by the host), a cpu worker none.
func TestWorkerEnvIsExactlyTheDeviceEnv(t *testing.T) {
	dev := DeviceSlot{Kind: DeviceAccelerator, UUID: "acme1", Vendor: "acme", Env: map[string]string{"ACME_VISIBLE_DEVICES": "acme1", "ACME_ORDER": "bus"}}
	got := WorkerEnv(&Spec{Rank: 1, Device: dev})
	want := []string{"LEM_WORKER_RANK=1", fmt.Sprintf("LEM_RUN_PID=%d", os.Getpid()), "ACME_ORDER=bus", "ACME_VISIBLE_DEVICES=acme1"}
	if !slices.Equal(got, want) {
		t.Errorf("WorkerEnv = %q, want %q", got, want)
	}
	cpu := WorkerEnv(&Spec{Rank: 0, Device: DeviceSlot{Kind: DeviceCPU, Index: -1}})
	if len(cpu) != 2 {
		t.Errorf("cpu WorkerEnv = %q, want the rank and run pid only", cpu)
	}
}
