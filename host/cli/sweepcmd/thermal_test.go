package sweepcmd

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/study"
)

// coolingThermometer returns, on each read, the next temperatures of its script (the last one
// again once the script ends), advancing a fake clock by step per read.
type coolingThermometer struct {
	script []map[string]float64
	reads  int
	clock  *fakeClock
	step   time.Duration
}

func (c *coolingThermometer) Temperatures(context.Context) (map[string]float64, error) {
	i := min(c.reads, len(c.script)-1)
	c.reads++
	c.clock.t = c.clock.t.Add(c.step)
	return c.script[i], nil
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestSettleEndsOnceWithinTolerance(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	th := &coolingThermometer{clock: clk, step: 2 * time.Second, script: []map[string]float64{
		{"gpu0": 70, "gpu1": 66}, {"gpu0": 60, "gpu1": 52}, {"gpu0": 53, "gpu1": 50}, {"gpu0": 51.5, "gpu1": 49}, {"gpu0": 40, "gpu1": 40},
	}}
	ref := map[string]float64{"gpu0": 50, "gpu1": 50}
	w := settle(context.Background(), th, ref, 2, time.Minute, 0, clk.now)
	if th.reads != 4 {
		t.Errorf("reads = %d, want 4 (the wait ends at the first read with every domain within 2 °C)", th.reads)
	}
	if w.TimedOut || w.Warning != "" || len(w.Domains) != 2 || w.Domains[0].Domain != "gpu0" || *w.Domains[0].ReachedC != 51.5 || w.Domains[0].ReferenceC != 50 {
		t.Errorf("wait = %+v", w)
	}
}

func TestSettleTimesOutWithAWarning(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	th := &coolingThermometer{clock: clk, step: 10 * time.Second, script: []map[string]float64{
		{"gpu0": 80, "gpu1": 50}, {"gpu0": 75, "gpu1": 50}, {"gpu0": 71, "gpu1": 50}, {"gpu0": 70, "gpu1": 50},
	}}
	ref := map[string]float64{"gpu0": 50, "gpu1": 50}
	w := settle(context.Background(), th, ref, 2, time.Minute, 0, clk.now)
	if th.reads != 6 {
		t.Errorf("reads = %d, want 6 (one every 10 s of a 60 s limit)", th.reads)
	}
	if !w.TimedOut {
		t.Fatalf("wait = %+v, want timed out", w)
	}
	for _, want := range []string{"thermal_max_wait_s = 60 s", "thermal_tolerance_c = 2 °C", "gpu0 at 70.0 °C (reference 50.0 °C)"} {
		if !strings.Contains(w.Warning, want) {
			t.Errorf("warning %q lacks %q", w.Warning, want)
		}
	}
	if strings.Contains(w.Warning, "gpu1") {
		t.Errorf("warning names gpu1, which is within tolerance: %q", w.Warning)
	}
}

func TestSettleStopsOnInterrupt(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	ctx, cancel := context.WithCancel(context.Background())
	th := &cancellingThermometer{cancel: cancel, clock: clk}
	w := settle(ctx, th, map[string]float64{"gpu0": 50}, 2, time.Hour, 0, clk.now)
	if th.reads != 1 || w.TimedOut || w.Warning != "" {
		t.Errorf("reads %d, wait %+v: want one read and no timeout once interrupted", th.reads, w)
	}
}

type cancellingThermometer struct {
	cancel func()
	clock  *fakeClock
	reads  int
}

func (c *cancellingThermometer) Temperatures(context.Context) (map[string]float64, error) {
	c.reads++
	c.cancel()
	c.clock.t = c.clock.t.Add(time.Second)
	return nil, context.Canceled
}

func TestSettleReadErrorsTimeOut(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	th := &failingThermometer{clock: clk}
	w := settle(context.Background(), th, map[string]float64{"gpu0": 50}, 2, 5*time.Second, 0, clk.now)
	if !w.TimedOut || !strings.Contains(w.Warning, "could not be read (nvml gone)") {
		t.Errorf("wait = %+v", w)
	}
}

type failingThermometer struct{ clock *fakeClock }

func (c *failingThermometer) Temperatures(context.Context) (map[string]float64, error) {
	c.clock.t = c.clock.t.Add(time.Second)
	return nil, errors.New("nvml gone")
}

// Without the thermal wait (thermal_max_wait_s = 0) no meter is read and the gap is a plain
// pause, said once.
func TestNoThermalReferenceWhenDisabled(t *testing.T) {
	var log bytes.Buffer
	f := &cliutil.Factory{Logger: hclog.New(&hclog.LoggerOptions{Output: &log, Level: hclog.Info})}
	sf := &study.File{GapS: 1, ThermalToleranceC: 2, ThermalMaxWaitS: 0}
	m := &study.Manifest{ThermalReferenceC: map[string]float64{"gpu0": 50}}
	opened := 0
	open := func(context.Context) (thermometer, func(), error) {
		opened++
		return nil, nil, errors.New("not opened")
	}
	if ref := thermalReference(context.Background(), f, sf, m, open); ref != nil || opened != 0 {
		t.Errorf("reference = %v, meters opened %d times; want none", ref, opened)
	}
	if !strings.Contains(log.String(), "thermal_max_wait_s = 0: the gap between experiments is a plain pause") {
		t.Errorf("log = %q", log.String())
	}
}

// Where no meter reports a temperature, no reference is kept (so no wait follows any gap) and
// the sweep says once that the gap is a plain pause.
func TestNoThermalReferenceWithoutTemperatures(t *testing.T) {
	var log bytes.Buffer
	f := &cliutil.Factory{Logger: hclog.New(&hclog.LoggerOptions{Output: &log, Level: hclog.Info})}
	sf := &study.File{GapS: 1, ThermalToleranceC: 2, ThermalMaxWaitS: 300}
	m := &study.Manifest{}
	closed := 0
	th := &coolingThermometer{clock: &fakeClock{}, script: []map[string]float64{{}}}
	open := func(context.Context) (thermometer, func(), error) { return th, func() { closed++ }, nil }
	if ref := thermalReference(context.Background(), f, sf, m, open); ref != nil || m.ThermalReferenceC != nil {
		t.Errorf("reference = %v, manifest %v; want none", ref, m.ThermalReferenceC)
	}
	if th.reads != 1 || closed != 1 {
		t.Errorf("reads %d, closed %d; want 1 and 1", th.reads, closed)
	}
	if n := strings.Count(log.String(), "no selected meter reports a temperature: the gap between experiments is a plain pause"); n != 1 {
		t.Errorf("said %d times: %q", n, log.String())
	}
}

// With temperatures, the reference is kept in the manifest, and a resumed study reuses it.
func TestThermalReferenceKeptForResume(t *testing.T) {
	f := &cliutil.Factory{Logger: hclog.NewNullLogger()}
	sf := &study.File{GapS: 1, ThermalToleranceC: 2, ThermalMaxWaitS: 300}
	m := &study.Manifest{}
	th := &coolingThermometer{clock: &fakeClock{}, script: []map[string]float64{{"gpu0": 41}, {"gpu0": 70}}}
	open := func(context.Context) (thermometer, func(), error) { return th, func() {}, nil }
	if ref := thermalReference(context.Background(), f, sf, m, open); ref["gpu0"] != 41 || m.ThermalReferenceC["gpu0"] != 41 {
		t.Fatalf("reference = %v, manifest %v", ref, m.ThermalReferenceC)
	}
	if ref := thermalReference(context.Background(), f, sf, m, open); ref["gpu0"] != 41 || th.reads != 1 {
		t.Errorf("resumed reference = %v after %d reads; want the first one, read once", ref, th.reads)
	}
}

// thermalWait warns with the domain, the temperature reached and the reference on timeout.
func TestThermalWaitWarnsOnTimeout(t *testing.T) {
	var log bytes.Buffer
	f := &cliutil.Factory{Logger: hclog.New(&hclog.LoggerOptions{Output: &log, Level: hclog.Info})}
	sf := &study.File{ThermalToleranceC: 1, ThermalMaxWaitS: 0.001}
	th := &coolingThermometer{clock: &fakeClock{}, script: []map[string]float64{{"gpu0": 70}}}
	open := func(context.Context) (thermometer, func(), error) { return th, func() {}, nil }
	w := thermalWait(context.Background(), f, sf, open, map[string]float64{"gpu0": 45})
	if !w.TimedOut || !strings.Contains(log.String(), "gpu0 at 70.0 °C (reference 45.0 °C)") {
		t.Errorf("wait %+v, log %q", w, log.String())
	}
}
