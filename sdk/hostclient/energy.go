package hostclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/lemctl/lemctl/sdk"
	energyv1 "github.com/lemctl/lemctl/sdk/proto/lem/energy/v1"
	"github.com/lemctl/lemctl/sdk/units"
)

// energyClient is the host side of lem.energy.v1; it implements Meter.
type energyClient struct{ c energyv1.EnergyClient }

func (e *energyClient) Inventory(ctx context.Context) ([]sdk.Domain, error) {
	resp, err := e.c.Inventory(ctx, &energyv1.InventoryRequest{})
	if err != nil {
		return nil, fromStatus(err)
	}
	var out []sdk.Domain
	for _, d := range resp.GetDomains() {
		out = append(out, domainFromProto(d))
	}
	return out, nil
}

func (e *energyClient) Environment(ctx context.Context) (*sdk.Environment, error) {
	resp, err := e.c.Environment(ctx, &energyv1.EnvironmentRequest{})
	if err != nil {
		return nil, fromStatus(err)
	}
	env := &sdk.Environment{Facts: resp.GetFacts()}
	for _, d := range resp.GetDevices() {
		env.Devices = append(env.Devices, sdk.DeviceEnvironment{ID: d.GetId(), Facts: d.GetFacts()})
	}
	return env, nil
}

func (e *energyClient) Start(ctx context.Context, req sdk.StartRequest) (*sdk.Session, error) {
	resp, err := e.c.Start(ctx, &energyv1.StartRequest{IntervalNs: int64(req.Interval), Domains: req.Domains, Label: req.Label})
	if err != nil {
		return nil, fromStatus(err)
	}
	s := &sdk.Session{ID: resp.GetSession(), StartMonoNS: resp.GetStartMonoNs(), Interval: time.Duration(resp.GetIntervalNs())}
	for _, d := range resp.GetDomains() {
		s.Domains = append(s.Domains, domainFromProto(d))
	}
	return s, nil
}

func (e *energyClient) Mark(ctx context.Context, session, label string) (int64, error) {
	resp, err := e.c.Mark(ctx, &energyv1.MarkRequest{Session: session, Label: label})
	if err != nil {
		return 0, fromStatus(err)
	}
	return resp.GetMonoNs(), nil
}

// Stop reassembles the summary and the chunked timelines, checking that every domain got exactly
// the number of samples the summary announced.
func (e *energyClient) Stop(ctx context.Context, session string) (*sdk.Measurement, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := e.c.Stop(ctx, &energyv1.StopRequest{Session: session})
	if err != nil {
		return nil, fromStatus(err)
	}
	var m *sdk.Measurement
	index := map[string]int{}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fromStatus(err)
		}
		switch part := msg.GetPart().(type) {
		case *energyv1.StopResponse_Summary:
			if m != nil {
				return nil, fmt.Errorf("meter sent two stop summaries: protocol violation")
			}
			s := part.Summary
			m = &sdk.Measurement{Session: s.GetSession(), StartMonoNS: s.GetStartMonoNs(), StopMonoNS: s.GetStopMonoNs(),
				SamplerCPUNS: s.GetSamplerCpuNs(), Findings: findingsFromProto(s.GetFindings())}
			for _, mk := range s.GetMarks() {
				m.Marks = append(m.Marks, sdk.Mark{Label: mk.GetLabel(), MonoNS: mk.GetMonoNs()})
			}
			for i, d := range s.GetDomains() {
				m.Domains = append(m.Domains, sdk.DomainEnergy{Domain: domainFromProto(d.GetDomain()), Energy: units.Energy(d.GetEnergyUj()),
					CounterUpdates: int(d.GetCounterUpdates()), Health: findingsFromProto(d.GetHealth()),
					Samples: make([]sdk.Sample, 0, d.GetSamples())})
				index[d.GetDomain().GetId()] = i
			}
		case *energyv1.StopResponse_Timeline:
			if m == nil {
				return nil, fmt.Errorf("meter sent a timeline before the stop summary: protocol violation")
			}
			i, ok := index[part.Timeline.GetDomain()]
			if !ok {
				return nil, fmt.Errorf("meter sent a timeline for unknown domain %q: protocol violation", part.Timeline.GetDomain())
			}
			for _, smp := range part.Timeline.GetSamples() {
				m.Domains[i].Samples = append(m.Domains[i].Samples, sampleFromProto(smp))
			}
		default:
			return nil, fmt.Errorf("meter sent an empty stop message: protocol violation")
		}
	}
	if m == nil {
		return nil, fmt.Errorf("meter ended the stop stream without a summary: protocol violation")
	}
	for _, d := range m.Domains {
		if len(d.Samples) != cap(d.Samples) {
			return nil, fmt.Errorf("meter announced %d samples for domain %q and sent %d: protocol violation", cap(d.Samples), d.Domain.ID, len(d.Samples))
		}
	}
	return m, nil
}

func domainFromProto(d *energyv1.Domain) sdk.Domain {
	out := sdk.Domain{ID: d.GetId(), Name: d.GetName(), Kind: d.GetKind(), Scope: d.GetScope(), Method: d.GetMethod(), Confidence: d.GetConfidence(),
		Available: d.GetAvailable(), Reason: d.GetReason(), Resolution: units.Energy(d.GetResolutionUj()), UpdatePeriod: time.Duration(d.GetUpdatePeriodNs()),
		MaxPower: units.Power(d.GetMaxPowerUw())}
	switch dev := d.GetDevice(); {
	case dev != nil:
		out.Device = &sdk.DeviceInfo{ID: dev.GetId(), Vendor: dev.GetVendor(), Model: dev.GetModel(), Index: int(dev.GetIndex()), VisibilityEnv: dev.GetVisibilityEnv()}
	case d.GetDeviceUuid() != "":
		// A meter that predates Device: the device can be named, but it brings no environment
		// that would isolate it.
		out.Device = &sdk.DeviceInfo{ID: d.GetDeviceUuid(), Index: int(d.GetDeviceIndex())}
	}
	return out
}

func findingsFromProto(fs []*energyv1.Finding) []sdk.Finding {
	var out []sdk.Finding
	for _, f := range fs {
		out = append(out, sdk.Finding{Code: f.GetCode(), Severity: f.GetSeverity(), Message: f.GetMessage(), Advice: f.GetAdvice(), Domain: f.GetDomain(), MonoNS: f.GetMonoNs()})
	}
	return out
}

func orNaN(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

func sampleFromProto(s *energyv1.Sample) sdk.Sample {
	return sdk.Sample{MonoNS: s.GetMonoNs(), Energy: units.Energy(s.GetEnergyUj()), PowerW: orNaN(s.PowerW), AveragePowerW: orNaN(s.AveragePowerW),
		TemperatureC: orNaN(s.TemperatureC), SMClockMHz: orNaN(s.SmClockMhz), MemoryClockMHz: orNaN(s.MemoryClockMhz),
		UtilizationPct: orNaN(s.UtilizationPct), MemoryUsedBytes: orNaN(s.MemoryUsedBytes), ClockEventReasons: s.GetClockEventReasons(), ReasonsRead: s.ClockEventReasons != nil}
}
