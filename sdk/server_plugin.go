package sdk

import (
	"context"
	"encoding/json"

	"google.golang.org/grpc"

	"github.com/lemctl/lemctl/sdk/internal/wire"
	pluginv1 "github.com/lemctl/lemctl/sdk/proto/lem/plugin/v1"
)

// The plugin side of the protocol: one gRPC server per service, each decoding its requests into
// the sdk's Go types and encoding the answers. The host side is package sdk/hostclient.

// services lists the gRPC services a plugin process serves, by go-plugin name: the common service
// and one per kind p implements.
func services(p *Plugin) map[string]*wire.Service {
	set := map[string]*wire.Service{wire.BaseService: {Register: func(s grpc.ServiceRegistrar) {
		pluginv1.RegisterPluginServer(s, &baseServer{impl: p})
	}}}
	if p.Loader != nil {
		set[string(KindLoader)] = loaderService(p.Loader)
	}
	if p.Engine != nil {
		set[string(KindEngine)] = engineService(p.Engine)
	}
	if p.Energy != nil {
		set[string(KindEnergy)] = energyService(p.Energy)
	}
	if p.Repository != nil {
		set[string(KindRepository)] = repositoryService(p.Repository)
	}
	return set
}

type baseServer struct {
	pluginv1.UnimplementedPluginServer
	impl *Plugin
}

func (s *baseServer) Info(context.Context, *pluginv1.InfoRequest) (*pluginv1.InfoResponse, error) {
	return infoToProto(s.impl.Info()), nil
}

func (s *baseServer) Configure(ctx context.Context, req *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
	errs, err := s.impl.configure(ctx, req.GetConfigJson())
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &pluginv1.ConfigureResponse{}
	for _, e := range errs {
		resp.Errors = append(resp.Errors, &pluginv1.ConfigError{Key: e.Key, Message: e.Message, Valid: e.Valid})
	}
	return resp, nil
}

func infoToProto(i Info) *pluginv1.InfoResponse {
	r := &pluginv1.InfoResponse{Name: i.Name, Version: i.Version, Description: i.Description, Capabilities: i.Capabilities}
	for _, k := range i.Kinds {
		r.Kinds = append(r.Kinds, string(k))
	}
	for _, v := range i.APIVersions {
		r.ApiVersions = append(r.ApiVersions, uint32(v))
	}
	for _, k := range i.ConfigSchema {
		ck := &pluginv1.ConfigKey{Key: k.Key, Type: k.Type, Doc: k.Doc, Enum: k.Enum, Min: k.Min, Max: k.Max, SamplingInterval: k.SamplingInterval}
		if k.Default != nil {
			if b, err := json.Marshal(k.Default); err == nil {
				ck.DefaultJson = string(b)
			}
		}
		r.ConfigSchema = append(r.ConfigSchema, ck)
	}
	return r
}
