package sdk

import (
	"context"
	"math"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/lemctl/lemctl/sdk/internal/wire"
	energyv1 "github.com/lemctl/lemctl/sdk/proto/lem/energy/v1"
)

func energyService(impl Meter) *wire.Service {
	return &wire.Service{Register: func(s grpc.ServiceRegistrar) { energyv1.RegisterEnergyServer(s, &energyServer{impl: impl}) }}
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

// Stop sends the summary, then each domain's timeline in chunks of at most wire.ChunkBytes.
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
			if size+n > wire.ChunkBytes-1024 && len(chunk.Samples) > 0 {
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

func domainToProto(d Domain) *energyv1.Domain {
	p := &energyv1.Domain{Id: d.ID, Name: d.Name, Kind: d.Kind, Scope: d.Scope, Method: d.Method, Confidence: d.Confidence,
		Available: d.Available, Reason: d.Reason, ResolutionUj: uint64(d.Resolution), UpdatePeriodNs: int64(d.UpdatePeriod),
		MaxPowerUw: uint64(d.MaxPower), DeviceIndex: -1}
	if dev := d.Device; dev != nil {
		p.Device = &energyv1.Device{Id: dev.ID, Vendor: dev.Vendor, Model: dev.Model, Index: int32(dev.Index), VisibilityEnv: dev.VisibilityEnv}
		// The deprecated fields keep their meaning for a host that predates Device.
		p.DeviceUuid, p.DeviceIndex = dev.ID, int32(dev.Index)
	}
	return p
}

func findingsToProto(fs []Finding) []*energyv1.Finding {
	var out []*energyv1.Finding
	for _, f := range fs {
		out = append(out, &energyv1.Finding{Code: f.Code, Severity: f.Severity, Message: f.Message, Advice: f.Advice, Domain: f.Domain, MonoNs: f.MonoNS})
	}
	return out
}

func optional(v float64) *float64 {
	if math.IsNaN(v) {
		return nil
	}
	return &v
}

func sampleToProto(s Sample) *energyv1.Sample {
	out := &energyv1.Sample{MonoNs: s.MonoNS, EnergyUj: uint64(s.Energy), PowerW: optional(s.PowerW), AveragePowerW: optional(s.AveragePowerW),
		TemperatureC: optional(s.TemperatureC), SmClockMhz: optional(s.SMClockMHz), MemoryClockMhz: optional(s.MemoryClockMHz),
		UtilizationPct: optional(s.UtilizationPct), MemoryUsedBytes: optional(s.MemoryUsedBytes)}
	if s.ReasonsRead {
		out.ClockEventReasons = &s.ClockEventReasons
	}
	return out
}
