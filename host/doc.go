// Package host is the lemctl orchestrator: configuration, datasets, plugin discovery, the
// launcher and its workers, aggregation, results and the command line. Its subpackages hold the
// code; this package only documents the layout. The host never links a vendor library (it builds
// with CGO_ENABLED=0): everything hardware- or runtime-specific lives in a plugin.
package host
