package estimate

import (
	"context"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/plugintest"
)

// statLine is a /proc/<pid>/stat line with the given parent and CPU times (ticks).
func statLine(pid int, comm string, ppid int, utime, stime, cutime, cstime uint64) string {
	return fmt.Sprintf("%d (%s) S %d %d %d 0 -1 4194560 100 0 0 0 %d %d %d %d 20 0 1 0 100 1000 10 18446744073709551615\n",
		pid, comm, ppid, pid, pid, utime, stime, cutime, cstime)
}

// fakeProc is a proc tree the test may change while a session samples it.
type fakeProc struct {
	mu sync.Mutex
	m  fstest.MapFS
}

func (f *fakeProc) Open(name string) (fs.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m.Open(name)
}

func (f *fakeProc) ReadDir(name string) ([]fs.DirEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m.ReadDir(name)
}

func (f *fakeProc) set(pid int, line string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[fmt.Sprintf("%d/stat", pid)] = &fstest.MapFile{Data: []byte(line)}
}

// tree is the worker 100 (its own 15 ticks, 5 of reaped children), its engine plugin 200 (40)
// and the engine's helper 300 (2), this plugin 250 (50, left out) and an unrelated process 400.
func tree(cpuModel string) *fakeProc {
	f := &fakeProc{m: fstest.MapFS{}}
	if cpuModel != "" {
		f.m["cpuinfo"] = &fstest.MapFile{Data: []byte("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: " + cpuModel + "\nflags\t\t: fpu\n")}
	}
	f.set(100, statLine(100, "lemctl", 1, 10, 5, 3, 2))
	f.set(200, statLine(200, "lem-plugin (onnx) x", 100, 30, 10, 0, 0))
	f.set(300, statLine(300, "helper", 200, 1, 1, 0, 0))
	f.set(250, statLine(250, "lem-plugin-estimate", 100, 40, 10, 0, 0))
	f.set(400, statLine(400, "other", 1, 900, 100, 0, 0))
	f.m["self"] = &fstest.MapFile{Data: []byte("250")} // not a pid directory: ignored
	return f
}

func TestReadStatAndTreeTicks(t *testing.T) {
	f := tree("")
	st, err := readStat(f, 200)
	if err != nil || st.ppid != 100 || st.ticks != 40 {
		t.Fatalf("readStat(200) = %+v, %v; want ppid 100, 40 ticks (comm with spaces and parentheses)", st, err)
	}
	ticks, procs, err := treeTicks(f, 100, 250)
	if err != nil || ticks != 20+40+2 || procs != 3 {
		t.Errorf("treeTicks = %d ticks over %d processes (%v), want 62 over 3 (worker, engine, helper; not the plugin, not pid 400)", ticks, procs, err)
	}
	if _, _, err := treeTicks(f, 999, 250); err == nil || !strings.Contains(err.Error(), "999") {
		t.Errorf("a missing worker must be an error naming it, got %v", err)
	}
	f.set(500, "500 (broken")
	if _, err := readStat(f, 500); err == nil {
		t.Error("a stat line without ')' must be an error")
	}
	// 62 ticks = 0.62 s of one core; at 5 W per core, 3.1 J.
	if uj := ticksToMicrojoules(62, 5); uj != 3_100_000 {
		t.Errorf("ticksToMicrojoules(62, 5 W) = %d µJ, want 3100000", uj)
	}
}

func meterOn(f *fakeProc) *Meter {
	return NewMeter(Options{FS: func(string) fs.FS { return f }, Self: 250, Parent: 100, Logger: hclog.NewNullLogger()})
}

func TestPerCorePowerFromConfigTableOrNothing(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, model string
		watts       float64
		wantW       float64 // 0: unavailable
		reason      string
	}{
		{"configured", "Intel(R) Xeon(R) Processor", 7.5, 7.5, ""},
		{"configured beats the table", "AMD EPYC 9654 96-Core Processor", 2, 2, ""},
		{"table", "AMD EPYC 9654 96-Core Processor", 0, 3.75, ""},
		{"table, spacing ignored", "Intel(R) Xeon(R)  Platinum 8480+ ", 0, 6.25, ""},
		{"unknown model", "Intel(R) Xeon(R) Processor", 0, 0, `"Intel(R) Xeon(R) Processor" is not in the table`},
		{"no cpuinfo", "", 0, 0, "no model name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := meterOn(tree(tc.model))
			set := DefaultSettings()
			set.WattsPerCore = tc.watts
			m.SetSettings(set)
			doms, err := m.Inventory(ctx)
			if err != nil || len(doms) != 1 {
				t.Fatalf("inventory %v, %v", doms, err)
			}
			d := doms[0]
			if d.ID != "estimate:cpu:100" || d.Method != sdk.MethodEstimate || d.Confidence != sdk.ConfidenceEstimate || d.Scope != sdk.ScopeProcess {
				t.Errorf("domain %+v is not an estimate of process 100", d)
			}
			env, _ := m.Environment(ctx)
			if tc.wantW == 0 {
				if d.Available || !strings.Contains(d.Reason, tc.reason) || !strings.Contains(d.Reason, "watts_per_core") {
					t.Errorf("available %v reason %q, want unavailable naming %q and watts_per_core", d.Available, d.Reason, tc.reason)
				}
				return
			}
			if !d.Available {
				t.Fatalf("unavailable: %s", d.Reason)
			}
			if got := env.Facts["watts_per_core"]; got != fmt.Sprint(tc.wantW) || env.Facts["watts_per_core_source"] == "" {
				t.Errorf("facts %v, want watts_per_core %v with its source", env.Facts, tc.wantW)
			}
		})
	}
}

// TestSessionEnergyIsCPUTimeTimesWatts: the worker's tree uses 1.5 s more CPU during the
// session (the engine 1.2 s, the worker 0.3 s) while the plugin itself and an unrelated process
// burn more: at 4 W per core the session's energy is 6 J.
func TestSessionEnergyIsCPUTimeTimesWatts(t *testing.T) {
	ctx := context.Background()
	f := tree("")
	m := meterOn(f)
	m.SetSettings(Settings{ProcRoot: "/proc", Interval: 10 * time.Millisecond, WattsPerCore: 4})
	s, err := m.Start(ctx, sdk.StartRequest{})
	if err != nil {
		t.Fatal(err)
	}
	f.set(200, statLine(200, "lem-plugin (onnx) x", 100, 130, 30, 0, 0))
	f.set(100, statLine(100, "lemctl", 1, 30, 15, 3, 2))
	f.set(250, statLine(250, "lem-plugin-estimate", 100, 400, 100, 0, 0))
	f.set(400, statLine(400, "other", 1, 9000, 1000, 0, 0))
	if _, err := m.Mark(ctx, s.ID, "after"); err != nil {
		t.Fatal(err)
	}
	meas, err := m.Stop(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(meas.Domains) != 1 || !meas.Domains[0].Domain.Available {
		t.Fatalf("measurement %+v", meas)
	}
	if got := meas.Domains[0].Energy.Joules(); got < 5.999 || got > 6.001 {
		t.Errorf("energy %.6f J, want 6 J (150 ticks × 4 W ÷ 100)", got)
	}
	for _, h := range meas.Domains[0].Health {
		t.Errorf("unexpected health finding %+v", h)
	}
}

// TestConformance runs the sdk's conformance suite on the plugin: on this machine's /proc with a
// configured per-core power (available), and on an empty proc root (unavailable, sessions work).
func TestConformance(t *testing.T) {
	bad := []plugintest.BadConfig{
		{Table: map[string]any{"proc_root": "relative"}, Key: "proc_root"},
		{Table: map[string]any{"watts_per_core": -1.0}, Key: "watts_per_core"},
		{Table: map[string]any{"interval": "1us"}, Key: "interval"},
	}
	for _, tc := range []struct {
		name      string
		config    map[string]any
		available bool
	}{
		{"proc with watts", map[string]any{"watts_per_core": 5.0, "interval": "10ms"}, true},
		{"empty proc root", map[string]any{"proc_root": t.TempDir(), "interval": "10ms"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plugintest.Run(t, NewPlugin(hclog.NewNullLogger()), plugintest.Options{
				Config: tc.config, BadConfigs: bad,
				Energy: plugintest.EnergyOptions{Session: 100 * time.Millisecond, RequireAvailable: tc.available},
			})
		})
	}
}
