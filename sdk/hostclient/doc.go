// Package hostclient is the host's side of the plugin protocol: Open starts a plugin binary and
// returns a Client whose Loader, Engine, Meter and Repository implement the sdk's interfaces
// over gRPC, so the host works with the sdk's Go types and never with protobuf. InProcess does
// the same for a plugin served inside the calling process (tests, sdk/plugintest), and Connect
// for any gRPC connection that speaks the protocol.
//
// The layout of module sdk: package sdk is what a plugin author imports (the kinds, their Go
// types, Serve); this package is what the host imports; sdk/internal/wire holds what both sides
// must agree on (the go-plugin handshake, service names, message and chunk limits). Package sdk
// encodes the plugin's answers and decodes the host's requests; this package does the reverse.
//
// It imports no host package and no plugin, and a plugin never needs it. Handshake is exported
// only for host tests that serve the protocol by hand.
package hostclient

import (
	"github.com/hashicorp/go-plugin"

	"github.com/lemctl/lemctl/sdk/internal/wire"
)

// Handshake is the go-plugin handshake lemctl and its plugins share (the one sdk.Serve uses).
var Handshake plugin.HandshakeConfig = wire.Handshake
