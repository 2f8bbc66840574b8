// Package sdk is the only package a lemctl plugin author imports (with its helpers units, clock,
// counter, sampler, and plugintest for tests). It defines the four plugin kinds as Go interfaces
// with plain Go types (Loader, Engine, Meter, Repository), the common Info and Configure
// contract, and Serve, which hides hashicorp/go-plugin: handshake, gRPC only, JSON logs on
// stderr, raised message limits, chunked payloads, and exit when the parent process dies. Run is
// Serve without the exit, for tests. Nothing of go-plugin, gRPC or protobuf appears in its API
// (api_test.go guards this).
//
// The host's side lives in sdk/hostclient: Open starts a plugin binary and returns a Client
// whose kinds implement these same interfaces over gRPC, so the host never sees protobuf types
// either. This package holds the plugin's half of the protocol (decoding requests, encoding
// answers); what both halves must agree on is in sdk/internal/wire.
//
// The sdk imports no host package and no plugin; nothing in it may write to standard output,
// which go-plugin reserves for its handshake.
package sdk
