package sweepcmd

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/config"
	"github.com/lemctl/lemctl/host/discovery"
	"github.com/lemctl/lemctl/host/study"
	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/hostclient"
)

// thermometer reads the current temperature of each domain that reports one, by domain id.
type thermometer interface {
	Temperatures(ctx context.Context) (map[string]float64, error)
}

// meterSelection is the energy meters of the base experiment (its first point), as `run` would
// select them.
type meterSelection struct {
	auto   bool
	names  []string
	tables map[string]map[string]any
}

func selectionOf(cfg *config.Config) meterSelection {
	return meterSelection{auto: cfg.Energy.Meters.Auto, names: cfg.Energy.Meters.Names, tables: cfg.PluginTables}
}

// thermalRead is how long each short meter session of the thermal wait samples.
const thermalRead = 1500 * time.Millisecond

// meterThermometer reads temperatures with short sessions of the selected meters.
type meterThermometer struct {
	sess    *discovery.Session
	names   []string
	clients []*hostclient.Client
}

// openThermometer starts the selected meters in a session of their own, closed by Close (the
// meters do not stay up while an experiment runs).
func openThermometer(ctx context.Context, f *cliutil.Factory, sel meterSelection) (*meterThermometer, error) {
	cat, err := f.Catalog(ctx, "")
	if err != nil {
		return nil, err
	}
	t := &meterThermometer{sess: cat.NewSession()}
	names := sel.names
	if sel.auto {
		names, _ = t.sess.AutoMeters(ctx, sel.tables)
	}
	var errs []error
	for _, n := range names {
		c, err := t.sess.Open(ctx, n, sdk.KindEnergy, sel.tables[n])
		if err != nil {
			errs = append(errs, fmt.Errorf("meter %s: %w", n, err))
			continue
		}
		t.names, t.clients = append(t.names, n), append(t.clients, c)
	}
	if len(t.clients) == 0 && len(errs) > 0 {
		t.Close()
		return nil, errors.Join(errs...)
	}
	return t, nil
}

func (t *meterThermometer) Close() { t.sess.Close() }

// openFunc starts a thermometer and returns it with the function that closes it.
type openFunc func(ctx context.Context) (thermometer, func(), error)

// meterOpener opens the selected meters as a thermometer.
func meterOpener(f *cliutil.Factory, sel meterSelection) openFunc {
	return func(ctx context.Context) (thermometer, func(), error) {
		t, err := openThermometer(ctx, f, sel)
		if err != nil {
			return nil, nil, err
		}
		return t, t.Close, nil
	}
}

// Temperatures runs one short session of every meter and returns, for each domain, the last
// temperature its samples carry. A meter that fails is left out; all failing is an error.
func (t *meterThermometer) Temperatures(ctx context.Context) (map[string]float64, error) {
	out := map[string]float64{}
	var errs []error
	for i, c := range t.clients {
		s, err := c.Meter().Start(ctx, sdk.StartRequest{Label: "sweep-thermal-wait"})
		if err != nil {
			errs = append(errs, fmt.Errorf("start meter %s: %w", t.names[i], t.sess.Explain(c, err)))
			continue
		}
		select {
		case <-time.After(thermalRead):
		case <-ctx.Done():
		}
		m, err := c.Meter().Stop(context.WithoutCancel(ctx), s.ID)
		if err != nil {
			errs = append(errs, fmt.Errorf("stop meter %s: %w", t.names[i], t.sess.Explain(c, err)))
			continue
		}
		for _, d := range m.Domains {
			for j := len(d.Samples) - 1; j >= 0; j-- {
				if v := d.Samples[j].TemperatureC; !math.IsNaN(v) {
					out[d.Domain.ID] = v
					break
				}
			}
		}
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
	}
	if len(out) == 0 && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// settle reads th until every domain of ref is within tol °C of its reference, until maxWait
// has passed (now measures it; pause separates reads that return at once), or until ctx ends.
// It returns the record of the wait; TimedOut and Warning say when it gave up.
func settle(ctx context.Context, th thermometer, ref map[string]float64, tol float64, maxWait time.Duration, pause time.Duration, now func() time.Time) *study.ThermalWait {
	start := now()
	ids := make([]string, 0, len(ref))
	for id := range ref {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	last := map[string]float64{}
	var readErr error
	for {
		got, err := th.Temperatures(ctx)
		readErr = err
		for id, v := range got {
			last[id] = v
		}
		var off []string
		if err == nil {
			for _, id := range ids {
				v, ok := got[id]
				if !ok || math.Abs(v-ref[id]) > tol {
					off = append(off, id)
				}
			}
		}
		waited := now().Sub(start)
		if (err == nil && len(off) == 0) || ctx.Err() != nil || waited >= maxWait {
			tw := &study.ThermalWait{WaitedS: waited.Seconds(), Domains: []study.ThermalDomain{}}
			for _, id := range ids {
				d := study.ThermalDomain{Domain: id, ReferenceC: ref[id]}
				if v, ok := last[id]; ok {
					d.ReachedC = &v
				}
				tw.Domains = append(tw.Domains, d)
			}
			if ctx.Err() == nil && (err != nil || len(off) > 0) {
				tw.TimedOut = true
				tw.Warning = timeoutWarning(off, last, ref, tol, maxWait, readErr)
			}
			return tw
		}
		if pause > 0 {
			select {
			case <-time.After(pause):
			case <-ctx.Done():
			}
		}
	}
}

func timeoutWarning(off []string, last, ref map[string]float64, tol float64, maxWait time.Duration, err error) string {
	if err != nil {
		return fmt.Sprintf("thermal wait gave up after thermal_max_wait_s = %g s: the temperatures could not be read (%v); the next experiment starts anyway", maxWait.Seconds(), err)
	}
	parts := make([]string, len(off))
	for i, id := range off {
		if v, ok := last[id]; ok {
			parts[i] = fmt.Sprintf("%s at %.1f °C (reference %.1f °C)", id, v, ref[id])
		} else {
			parts[i] = fmt.Sprintf("%s not read (reference %.1f °C)", id, ref[id])
		}
	}
	return fmt.Sprintf("thermal wait gave up after thermal_max_wait_s = %g s, not within thermal_tolerance_c = %g °C: %s; the next experiment starts anyway",
		maxWait.Seconds(), tol, strings.Join(parts, ", "))
}

// thermalReference returns the temperatures the thermal wait comes back to: those of the
// manifest (a resumed study keeps its first reference), else those the selected meters read
// now, before the first experiment. It says once when the gap is a plain pause.
func thermalReference(ctx context.Context, f *cliutil.Factory, sf *study.File, m *study.Manifest, open openFunc) map[string]float64 {
	if sf.ThermalMaxWaitS == 0 {
		f.Logger.Info("thermal_max_wait_s = 0: the gap between experiments is a plain pause", "gap_s", sf.GapS)
		return nil
	}
	if len(m.ThermalReferenceC) > 0 {
		return m.ThermalReferenceC
	}
	th, closeTh, err := open(ctx)
	if err != nil {
		f.Logger.Warn("the meters could not be started to read a temperature: the gap between experiments is a plain pause", "error", err)
		return nil
	}
	defer closeTh()
	ref, err := th.Temperatures(ctx)
	if err != nil || len(ref) == 0 {
		if err != nil && ctx.Err() == nil {
			f.Logger.Warn("the meters' temperatures could not be read: the gap between experiments is a plain pause", "error", err)
		} else if ctx.Err() == nil {
			f.Logger.Info("no selected meter reports a temperature: the gap between experiments is a plain pause", "gap_s", sf.GapS)
		}
		return nil
	}
	m.ThermalReferenceC = ref
	f.Logger.Info("thermal reference read: after each gap the sweep waits until these temperatures are back within thermal_tolerance_c",
		"reference", formatTemps(ref), "tolerance_c", sf.ThermalToleranceC, "max_wait_s", sf.ThermalMaxWaitS)
	return ref
}

// thermalWait waits, after the gap, for the temperatures to come back to ref (bounded by
// thermal_max_wait_s), warning when they do not.
func thermalWait(ctx context.Context, f *cliutil.Factory, sf *study.File, open openFunc, ref map[string]float64) *study.ThermalWait {
	maxWait := time.Duration(sf.ThermalMaxWaitS * float64(time.Second))
	th, closeTh, err := open(ctx)
	if err != nil {
		w := &study.ThermalWait{TimedOut: true, Domains: []study.ThermalDomain{},
			Warning: fmt.Sprintf("thermal wait skipped: the meters could not be started (%v); the next experiment starts anyway", err)}
		f.Logger.Warn(w.Warning)
		return w
	}
	defer closeTh()
	w := settle(ctx, th, ref, sf.ThermalToleranceC, maxWait, 500*time.Millisecond, time.Now)
	if w.TimedOut {
		f.Logger.Warn(w.Warning)
	} else if ctx.Err() == nil {
		f.Logger.Info("thermal wait done: the temperatures are back within thermal_tolerance_c", "waited_s", fmt.Sprintf("%.1f", w.WaitedS))
	}
	return w
}

func formatTemps(t map[string]float64) string {
	ids := make([]string, 0, len(t))
	for id := range t {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("%s %.1f °C", id, t[id])
	}
	return strings.Join(parts, ", ")
}
