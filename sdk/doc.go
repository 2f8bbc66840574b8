// Package sdk is the only package a lemctl plugin author imports. It defines the four plugin
// kinds as Go interfaces with Go types (Loader, Engine, Meter, Repository), the common Info and
// Configure contract, and Serve, which hides hashicorp/go-plugin: handshake, gRPC only, JSON logs
// on stderr, raised message limits, chunked payloads, and exit when the parent process dies.
//
// The host uses the same interfaces from the other side: Dispense returns gRPC clients that
// implement them, so the host never sees protobuf types.
//
// The sdk imports no host package and no plugin; nothing in it may write to standard output,
// which go-plugin reserves for its handshake.
package sdk
