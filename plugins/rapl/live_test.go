package rapl

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/lemctl/lemctl/plugins/rapl/internal/fakesys"
	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/hostclient"
)

// liveZones: package-0 at 50 W with a 100 J range (500 W max: poll bound 100 ms) starting 30 J
// before the wrap, so it wraps 0.6 s in; dram at 5 W (50 W max: bound 1 s) whose counter is
// reset to 0.2 J 1.2 s in. A reset drops the counter by ~11 J, which read as a wrap would be
// ~89 J in one interval, far above what 50 W allows.
var liveZones = []fakesys.Zone{
	{Dir: "intel-rapl:0", Name: "package-0", Watts: 50, Range: 100_000_000, MaxPower: 500_000_000, Start: 70_000_000},
	{Dir: "intel-rapl:0:0", Name: "dram", Watts: 5, Range: 100_000_000, MaxPower: 50_000_000, Start: 5_000_000,
		ResetAfter: 1200 * time.Millisecond, ResetTo: 200_000},
}

// runLive measures the fake tree with meter for about 2.3 s and checks the energy against the
// ground truth the writer followed.
func runLive(t *testing.T, meter sdk.Meter, configure func(map[string]any) error) {
	dir := t.TempDir()
	fake, err := fakesys.New(dir, liveZones...)
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Stop()
	if err := configure(map[string]any{"sysfs_root": dir, "interval": "1s"}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	fake.Run(2 * time.Millisecond)
	sess, err := meter.Start(ctx, sdk.StartRequest{Label: "live"})
	if err != nil {
		t.Fatal(err)
	}
	// The configured 1 s is longer than the package's bound: 100 J at 500 W wraps in 200 ms.
	if sess.Interval != 100*time.Millisecond {
		t.Errorf("session interval %v, want 100ms (half the package's wrap period at 500 W)", sess.Interval)
	}
	time.Sleep(1100 * time.Millisecond)
	markNS, err := meter.Mark(ctx, sess.ID, "middle")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1200 * time.Millisecond)
	meas, err := meter.Stop(ctx, sess.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.Stop(); err != nil {
		t.Fatal(err)
	}

	if len(meas.Marks) != 1 || meas.Marks[0].MonoNS != markNS {
		t.Errorf("marks %+v, want one at %d", meas.Marks, markNS)
	}
	if fake.Wraps("intel-rapl:0") < 1 {
		t.Fatal("the package counter never wrapped during the test: the test proves nothing")
	}
	if _, ok := fake.ResetNS("intel-rapl:0:0"); !ok {
		t.Fatal("the dram counter was never reset during the test")
	}
	resets := map[string]int{}
	for _, f := range meas.Findings {
		if f.Code == "counter_reset" {
			resets[f.Domain]++
		}
	}
	if len(meas.Domains) != 2 {
		t.Fatalf("%d domains, want 2", len(meas.Domains))
	}
	for i, d := range meas.Domains {
		z := liveZones[i]
		if d.Domain.ID != "rapl:"+z.Dir || !d.Domain.Available {
			t.Errorf("domain %d: %s available=%v (%s), want rapl:%s available", i, d.Domain.ID, d.Domain.Available, d.Domain.Reason, z.Dir)
			continue
		}
		if len(d.Samples) < 10 {
			t.Errorf("%s: %d samples in 2.3 s at 100 ms", d.Domain.ID, len(d.Samples))
			continue
		}
		var maxGap int64
		for j := 1; j < len(d.Samples); j++ {
			a, b := d.Samples[j-1], d.Samples[j]
			if b.Energy < a.Energy || b.MonoNS < a.MonoNS {
				t.Errorf("%s: cumulative energy or time goes backwards at sample %d", d.Domain.ID, j)
			}
			maxGap = max(maxGap, b.MonoNS-a.MonoNS)
		}
		first, last := d.Samples[0], d.Samples[len(d.Samples)-1]
		truth := z.Watts * float64(last.MonoNS-first.MonoNS) / 1e9 // J
		// One sample of slack (the longest gap between samples), plus how stale the writer let
		// the files get (its 2 ms tick, or longer when this shared machine descheduled it).
		tol := z.Watts * (float64(maxGap) + float64(fake.MaxStale()) + 5e6) / 1e9
		low, high := truth-tol, truth+tol
		if z.ResetAfter > 0 {
			// The interval with the reset is not counted: at most one more sample lost.
			low -= z.Watts * float64(maxGap) / 1e9
			if resets[d.Domain.ID] != 1 {
				t.Errorf("%s: %d counter_reset findings, want 1 (findings %+v)", d.Domain.ID, resets[d.Domain.ID], meas.Findings)
			}
		} else if resets[d.Domain.ID] != 0 {
			t.Errorf("%s: %d counter_reset findings for a counter that only wrapped: %+v", d.Domain.ID, resets[d.Domain.ID], meas.Findings)
		}
		got := d.Energy.Joules()
		t.Logf("%s: %.3f J measured, %.3f J true over %.3f s, %d samples, longest gap %v, files up to %v stale",
			d.Domain.ID, got, truth, float64(last.MonoNS-first.MonoNS)/1e9, len(d.Samples), time.Duration(maxGap), fake.MaxStale())
		if got < low || got > high {
			t.Errorf("%s: energy %.3f J, want %.3f J within [%.3f, %.3f]", d.Domain.ID, got, truth, low, high)
		}
	}
}

// TestLiveInProcess runs the live check on the meter in this process.
func TestLiveInProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("live sampling takes 2.5 s")
	}
	m := NewMeter(Options{Logger: hclog.NewNullLogger()})
	runLive(t, m, func(raw map[string]any) error {
		cfg, errs := sdk.ValidateConfig(Schema(), raw)
		if len(errs) == 0 {
			var err error
			if errs, err = m.Configure(context.Background(), cfg); err != nil {
				return err
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("configure: %v", errs)
		}
		return nil
	})
}

// pluginBinary returns the plugin binary: $LEM_BIN/plugins/lem-plugin-rapl when LEM_BIN is set
// (make test builds it first), else one built now into a temporary directory.
func pluginBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("LEM_BIN"); bin != "" {
		p := filepath.Join(bin, "plugins", "lem-plugin-rapl")
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("LEM_BIN is set but the plugin is not built: %v", err)
		}
		return p
	}
	p := filepath.Join(t.TempDir(), "lem-plugin-rapl")
	out, err := exec.Command("go", "build", "-o", p, "./cmd/lem-plugin-rapl").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/lem-plugin-rapl: %v\n%s", err, out)
	}
	return p
}

func openPlugin(t *testing.T, bin string) *hostclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := hostclient.Open(ctx, bin)
	if err != nil {
		t.Fatalf("open %s: %v", bin, err)
	}
	t.Cleanup(c.Close)
	if info := c.Info(); info.Name != Name || c.Meter() == nil {
		t.Fatalf("plugin info %+v, meter %v", info, c.Meter())
	}
	return c
}

// TestPluginBinary drives the real plugin binary over go-plugin: the live check through
// sysfs_root, and this host's own /sys.
func TestPluginBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the plugin binary")
	}
	bin := pluginBinary(t)

	t.Run("live", func(t *testing.T) {
		c := openPlugin(t, bin)
		runLive(t, c.Meter(), func(cfg map[string]any) error {
			errs, err := c.Configure(context.Background(), cfg)
			if err != nil {
				return err
			}
			if len(errs) > 0 {
				return fmt.Errorf("configure: %v", errs)
			}
			return nil
		})
	})

	t.Run("bad config", func(t *testing.T) {
		c := openPlugin(t, bin)
		errs, err := c.Configure(context.Background(), map[string]any{"sysfs_root": "sys", "zones": []any{"no such thing!"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(errs) != 2 || errs[0].Key != KeySysfsRoot || errs[1].Key != KeyZones {
			t.Errorf("errors %+v, want one on sysfs_root and one on zones", errs)
		}
	})

	t.Run("this host", func(t *testing.T) {
		c := openPlugin(t, bin)
		ctx := context.Background()
		doms, err := c.Meter().Inventory(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, statErr := os.Stat("/sys/class/powercap")
		noPowercap := errors.Is(statErr, fs.ErrNotExist)
		for _, d := range doms {
			t.Logf("%s %s available=%v %s", d.ID, d.Name, d.Available, d.Reason)
			if !d.Available && d.Reason == "" {
				t.Errorf("%s unavailable without a reason", d.ID)
			}
		}
		if noPowercap && (len(doms) != 1 || doms[0].Available || !strings.Contains(doms[0].Reason, "no /sys/class/powercap")) {
			t.Fatalf("this host has no powercap, inventory says %+v", doms)
		}
		sess, err := c.Meter().Start(ctx, sdk.StartRequest{})
		if err != nil {
			t.Fatalf("Start must work even without RAPL: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
		meas, err := c.Meter().Stop(ctx, sess.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range meas.Domains {
			if noPowercap && (d.Domain.Available || d.Domain.Reason == "") {
				t.Errorf("measurement domain %+v", d.Domain)
			}
		}
	})
}
