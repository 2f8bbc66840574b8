package sdk

import (
	"context"
	"encoding/json"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginv1 "github.com/lemctl/lemctl/sdk/proto/lem/plugin/v1"
)

// Handshake is the go-plugin handshake shared by lemctl and its plugins. The cookie only stops a
// plugin from being run by hand by mistake; it is not a security measure.
var Handshake = plugin.HandshakeConfig{
	MagicCookieKey:   "LEM_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "lemctl-plugin-3f6c1b2e9d",
}

// Names of the go-plugin "plugins" one binary dispenses: the common service and one per kind.
const (
	dispenseBase       = "plugin"
	dispenseLoader     = string(KindLoader)
	dispenseEngine     = string(KindEngine)
	dispenseEnergy     = string(KindEnergy)
	dispenseRepository = string(KindRepository)
)

// MaxMessageBytes is the gRPC message limit on both sides. Payloads are chunked at ChunkBytes,
// so this only has to hold the largest unchunked message (a big batch of prompts or results)
// with room to spare; gRPC's default of 4 MiB is too small for 64 prompts of 16k tokens.
const MaxMessageBytes = 256 << 20

// ChunkBytes is the largest payload a single streamed message carries (docs/architecture.md).
const ChunkBytes = 1 << 20

// grpcService is one lemctl service as a go-plugin plugin (gRPC only).
type grpcService struct {
	plugin.NetRPCUnsupportedPlugin
	register func(*grpc.Server)
	client   func(*grpc.ClientConn) any
}

func (g *grpcService) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	g.register(s)
	return nil
}

func (g *grpcService) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return g.client(c), nil
}

// baseService serves pluginv1.Plugin with impl; with impl nil (the host) it only makes clients.
func baseService(impl *Plugin) *grpcService {
	return &grpcService{
		register: func(s *grpc.Server) { pluginv1.RegisterPluginServer(s, &baseServer{impl: impl}) },
		client:   func(c *grpc.ClientConn) any { return &baseClient{c: pluginv1.NewPluginClient(c)} },
	}
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

// baseClient is the host side of lem.plugin.v1.
type baseClient struct{ c pluginv1.PluginClient }

func (b *baseClient) Info(ctx context.Context) (Info, error) {
	resp, err := b.c.Info(ctx, &pluginv1.InfoRequest{})
	if err != nil {
		return Info{}, fromStatus(err)
	}
	return infoFromProto(resp), nil
}

func (b *baseClient) Configure(ctx context.Context, cfg map[string]any) ([]ConfigError, error) {
	if cfg == nil {
		cfg = map[string]any{}
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	resp, err := b.c.Configure(ctx, &pluginv1.ConfigureRequest{ConfigJson: raw})
	if err != nil {
		return nil, fromStatus(err)
	}
	var out []ConfigError
	for _, e := range resp.GetErrors() {
		out = append(out, ConfigError{Key: e.GetKey(), Message: e.GetMessage(), Valid: e.GetValid()})
	}
	return out, nil
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
		ck := &pluginv1.ConfigKey{Key: k.Key, Type: k.Type, Doc: k.Doc, Enum: k.Enum, Min: k.Min, Max: k.Max}
		if k.Default != nil {
			if b, err := json.Marshal(k.Default); err == nil {
				ck.DefaultJson = string(b)
			}
		}
		r.ConfigSchema = append(r.ConfigSchema, ck)
	}
	return r
}

func infoFromProto(r *pluginv1.InfoResponse) Info {
	i := Info{Name: r.GetName(), Version: r.GetVersion(), Description: r.GetDescription(), Capabilities: r.GetCapabilities()}
	for _, k := range r.GetKinds() {
		i.Kinds = append(i.Kinds, Kind(k))
	}
	for _, v := range r.GetApiVersions() {
		i.APIVersions = append(i.APIVersions, int(v))
	}
	for _, k := range r.GetConfigSchema() {
		ck := ConfigKey{Key: k.GetKey(), Type: k.GetType(), Doc: k.GetDoc(), Enum: k.GetEnum(), Min: k.Min, Max: k.Max}
		if k.GetDefaultJson() != "" {
			var v any
			if json.Unmarshal([]byte(k.GetDefaultJson()), &v) == nil {
				ck.Default = v
			}
		}
		i.ConfigSchema = append(i.ConfigSchema, ck)
	}
	return i
}
