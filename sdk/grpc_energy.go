package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	energyv1 "github.com/lemctl/lemctl/sdk/proto/lem/energy/v1"
	"github.com/lemctl/lemctl/sdk/units"
)

// energyService serves energyv1.Energy with impl; with impl nil (the host) it only makes clients.
func energyService(impl Meter) *grpcService {
	return &grpcService{
		register: func(s *grpc.Server) { energyv1.RegisterEnergyServer(s, &energyServer{impl: impl}) },
		client:   func(c *grpc.ClientConn) any { return &energyClient{c: energyv1.NewEnergyClient(c)} },
	}
}

type energyServer struct {
	energyv1.UnimplementedEnergyServer
	impl Meter
}

func (s *energyServer) Inventory(ctx context.Context, _ *energyv1.InventoryRequest) (*energyv1.InventoryResponse, error) {
	doms, err := s.impl.Inventory(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &energyv1.InventoryResponse{}
	for _, d := range doms {
		resp.Domains = append(resp.Domains, domainToProto(d))
	}
	return resp, nil
}

func (s *energyServer) Environment(ctx context.Context, _ *energyv1.EnvironmentRequest) (*energyv1.EnvironmentResponse, error) {
	env, err := s.impl.Environment(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &energyv1.EnvironmentResponse{}
	if env != nil {
		resp.Facts = env.Facts
		for _, d := range env.Devices {
			resp.Devices = append(resp.Devices, &energyv1.DeviceEnvironment{Id: d.ID, Facts: d.Facts})
		}
	}
	return resp, nil
}

func (s *energyServer) Start(ctx context.Context, req *energyv1.StartRequest) (*energyv1.StartResponse, error) {
	sess, err := s.impl.Start(ctx, StartRequest{Interval: time.Duration(req.GetIntervalNs()), Domains: req.GetDomains(), Label: req.GetLabel()})
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &energyv1.StartResponse{Session: sess.ID, StartMonoNs: sess.StartMonoNS, IntervalNs: int64(sess.Interval)}
	for _, d := range sess.Domains {
		resp.Domains = append(resp.Domains, domainToProto(d))
	}
	return resp, nil
}

func (s *energyServer) Mark(ctx context.Context, req *energyv1.MarkRequest) (*energyv1.MarkResponse, error) {
	ns, err := s.impl.Mark(ctx, req.GetSession(), req.GetLabel())
	if err != nil {
		return nil, toStatus(err)
	}
	return &energyv1.MarkResponse{MonoNs: ns}, nil
}

// Stop sends the summary, then each domain's timeline in chunks of at most ChunkBytes.
func (s *energyServer) Stop(req *energyv1.StopRequest, stream energyv1.Energy_StopServer) error {
	m, err := s.impl.Stop(stream.Context(), req.GetSession())
	if err != nil {
		return toStatus(err)
	}
	sum := &energyv1.StopSummary{Session: m.Session, StartMonoNs: m.StartMonoNS, StopMonoNs: m.StopMonoNS, SamplerCpuNs: m.SamplerCPUNS,
		Findings: findingsToProto(m.Findings)}
	for _, mk := range m.Marks {
		sum.Marks = append(sum.Marks, &energyv1.Mark{Label: mk.Label, MonoNs: mk.MonoNS})
	}
	for _, d := range m.Domains {
		sum.Domains = append(sum.Domains, &energyv1.DomainEnergy{Domain: domainToProto(d.Domain), EnergyUj: uint64(d.Energy),
			CounterUpdates: int32(d.CounterUpdates), Health: findingsToProto(d.Health), Samples: int32(len(d.Samples))})
	}
	if err := stream.Send(&energyv1.StopResponse{Part: &energyv1.StopResponse_Summary{Summary: sum}}); err != nil {
		return err
	}
	for _, d := range m.Domains {
		chunk := &energyv1.TimelineChunk{Domain: d.Domain.ID}
		size := 0
		for _, smp := range d.Samples {
			ps := sampleToProto(smp)
			n := proto.Size(ps) + 4
			if size+n > ChunkBytes-1024 && len(chunk.Samples) > 0 {
				if err := stream.Send(&energyv1.StopResponse{Part: &energyv1.StopResponse_Timeline{Timeline: chunk}}); err != nil {
					return err
				}
				chunk = &energyv1.TimelineChunk{Domain: d.Domain.ID}
				size = 0
			}
			chunk.Samples = append(chunk.Samples, ps)
			size += n
		}
		if len(chunk.Samples) > 0 {
			if err := stream.Send(&energyv1.StopResponse{Part: &energyv1.StopResponse_Timeline{Timeline: chunk}}); err != nil {
				return err
			}
		}
	}
	return nil
}

// energyClient is the host side of lem.energy.v1; it implements Meter.
type energyClient struct{ c energyv1.EnergyClient }

func (e *energyClient) Inventory(ctx context.Context) ([]Domain, error) {
	resp, err := e.c.Inventory(ctx, &energyv1.InventoryRequest{})
	if err != nil {
		return nil, fromStatus(err)
	}
	var out []Domain
	for _, d := range resp.GetDomains() {
		out = append(out, domainFromProto(d))
	}
	return out, nil
}

func (e *energyClient) Environment(ctx context.Context) (*Environment, error) {
	resp, err := e.c.Environment(ctx, &energyv1.EnvironmentRequest{})
	if err != nil {
		return nil, fromStatus(err)
	}
	env := &Environment{Facts: resp.GetFacts()}
	for _, d := range resp.GetDevices() {
		env.Devices = append(env.Devices, DeviceEnvironment{ID: d.GetId(), Facts: d.GetFacts()})
	}
	return env, nil
}

func (e *energyClient) Start(ctx context.Context, req StartRequest) (*Session, error) {
	resp, err := e.c.Start(ctx, &energyv1.StartRequest{IntervalNs: int64(req.Interval), Domains: req.Domains, Label: req.Label})
	if err != nil {
		return nil, fromStatus(err)
	}
	s := &Session{ID: resp.GetSession(), StartMonoNS: resp.GetStartMonoNs(), Interval: time.Duration(resp.GetIntervalNs())}
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
func (e *energyClient) Stop(ctx context.Context, session string) (*Measurement, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := e.c.Stop(ctx, &energyv1.StopRequest{Session: session})
	if err != nil {
		return nil, fromStatus(err)
	}
	var m *Measurement
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
			m = &Measurement{Session: s.GetSession(), StartMonoNS: s.GetStartMonoNs(), StopMonoNS: s.GetStopMonoNs(),
				SamplerCPUNS: s.GetSamplerCpuNs(), Findings: findingsFromProto(s.GetFindings())}
			for _, mk := range s.GetMarks() {
				m.Marks = append(m.Marks, Mark{Label: mk.GetLabel(), MonoNS: mk.GetMonoNs()})
			}
			for i, d := range s.GetDomains() {
				m.Domains = append(m.Domains, DomainEnergy{Domain: domainFromProto(d.GetDomain()), Energy: units.Energy(d.GetEnergyUj()),
					CounterUpdates: int(d.GetCounterUpdates()), Health: findingsFromProto(d.GetHealth()),
					Samples: make([]Sample, 0, d.GetSamples())})
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

func domainToProto(d Domain) *energyv1.Domain {
	return &energyv1.Domain{Id: d.ID, Name: d.Name, Kind: d.Kind, Scope: d.Scope, Method: d.Method, Confidence: d.Confidence,
		Available: d.Available, Reason: d.Reason, ResolutionUj: uint64(d.Resolution), UpdatePeriodNs: int64(d.UpdatePeriod),
		MaxPowerUw: uint64(d.MaxPower), DeviceUuid: d.DeviceUUID, DeviceIndex: int32(d.DeviceIndex)}
}

func domainFromProto(d *energyv1.Domain) Domain {
	return Domain{ID: d.GetId(), Name: d.GetName(), Kind: d.GetKind(), Scope: d.GetScope(), Method: d.GetMethod(), Confidence: d.GetConfidence(),
		Available: d.GetAvailable(), Reason: d.GetReason(), Resolution: units.Energy(d.GetResolutionUj()), UpdatePeriod: time.Duration(d.GetUpdatePeriodNs()),
		MaxPower: units.Power(d.GetMaxPowerUw()), DeviceUUID: d.GetDeviceUuid(), DeviceIndex: int(d.GetDeviceIndex())}
}

func findingsToProto(fs []Finding) []*energyv1.Finding {
	var out []*energyv1.Finding
	for _, f := range fs {
		out = append(out, &energyv1.Finding{Code: f.Code, Severity: f.Severity, Message: f.Message, Advice: f.Advice, Domain: f.Domain, MonoNs: f.MonoNS})
	}
	return out
}

func findingsFromProto(fs []*energyv1.Finding) []Finding {
	var out []Finding
	for _, f := range fs {
		out = append(out, Finding{Code: f.GetCode(), Severity: f.GetSeverity(), Message: f.GetMessage(), Advice: f.GetAdvice(), Domain: f.GetDomain(), MonoNS: f.GetMonoNs()})
	}
	return out
}

func optional(v float64) *float64 {
	if math.IsNaN(v) {
		return nil
	}
	return &v
}

func orNaN(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

func sampleToProto(s Sample) *energyv1.Sample {
	return &energyv1.Sample{MonoNs: s.MonoNS, EnergyUj: uint64(s.Energy), PowerW: optional(s.PowerW), AveragePowerW: optional(s.AveragePowerW),
		TemperatureC: optional(s.TemperatureC), SmClockMhz: optional(s.SMClockMHz), MemoryClockMhz: optional(s.MemoryClockMHz),
		UtilizationPct: optional(s.UtilizationPct), MemoryUsedBytes: optional(s.MemoryUsedBytes), ClockEventReasons: s.ClockEventReasons}
}

func sampleFromProto(s *energyv1.Sample) Sample {
	return Sample{MonoNS: s.GetMonoNs(), Energy: units.Energy(s.GetEnergyUj()), PowerW: orNaN(s.PowerW), AveragePowerW: orNaN(s.AveragePowerW),
		TemperatureC: orNaN(s.TemperatureC), SMClockMHz: orNaN(s.SmClockMhz), MemoryClockMHz: orNaN(s.MemoryClockMhz),
		UtilizationPct: orNaN(s.UtilizationPct), MemoryUsedBytes: orNaN(s.MemoryUsedBytes), ClockEventReasons: s.GetClockEventReasons()}
}
