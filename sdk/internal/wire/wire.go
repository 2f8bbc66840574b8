// Package wire is the plumbing that the plugin side (sdk.Serve) and the host side
// (sdk/hostclient) must agree on: the go-plugin handshake, the name of the common service, the
// message and chunk limits, and the adapter that turns one gRPC service into a go-plugin
// plugin. It knows nothing of the sdk's Go types, so that package sdk can import it; each side
// converts its own messages (sdk decodes requests and encodes responses, hostclient the
// reverse).
//
// It is internal to module sdk: a plugin author never sees it, and the host reaches it only
// through hostclient. It must never hold a plugin's or the host's logic.
package wire

import (
	"context"
	"errors"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// Handshake is the go-plugin handshake shared by lemctl and its plugins. The cookie only stops a
// plugin from being run by hand by mistake; it is not a security measure.
var Handshake = plugin.HandshakeConfig{
	MagicCookieKey:   "LEM_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "lemctl-plugin-3f6c1b2e9d",
}

// BaseService is the go-plugin name of the common service (lem.plugin.v1: Info, Configure).
// Every kind is dispensed under its kind's name ("loader", "engine", "energy", "repository").
const BaseService = "plugin"

// MaxMessageBytes is the gRPC message limit on both sides of a plugin process. Payloads are
// chunked at ChunkBytes, so this only has to hold the largest unchunked message (a big batch of
// prompts or results) with room to spare; gRPC's default of 4 MiB is too small for 64 prompts
// of 16k tokens.
const MaxMessageBytes = 256 << 20

// ChunkBytes is the largest payload a single streamed message carries (docs/architecture.md).
const ChunkBytes = 1 << 20

// ServerOptions are the gRPC server options of a plugin process.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.MaxRecvMsgSize(MaxMessageBytes), grpc.MaxSendMsgSize(MaxMessageBytes)}
}

// DialOptions are the host's gRPC dial options for a plugin process.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithDefaultCallOptions(
		grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes))}
}

// Service is one lemctl gRPC service as a go-plugin plugin (gRPC only). A plugin process sets
// Register; the host sets Connect.
type Service struct {
	plugin.NetRPCUnsupportedPlugin
	// Register registers the service's implementation on a plugin's server.
	Register func(grpc.ServiceRegistrar)
	// Connect makes the host's Go client of the service over a connection.
	Connect func(grpc.ClientConnInterface) any
}

// GRPCServer implements plugin.GRPCPlugin.
func (s *Service) GRPCServer(_ *plugin.GRPCBroker, srv *grpc.Server) error {
	if s.Register == nil {
		return errors.New("wire: this service has no server side here")
	}
	s.Register(srv)
	return nil
}

// GRPCClient implements plugin.GRPCPlugin.
func (s *Service) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	if s.Connect == nil {
		return nil, errors.New("wire: this service has no client side here")
	}
	return s.Connect(c), nil
}
