// Package pluginscmd is `lemctl plugins`: list the plugins discovery finds (with every bad
// candidate and why it is refused), describe one plugin's capabilities and configuration
// schema, pin plugin binaries in a lock file, and check a plugin binary (any language) against
// the conformance suite (sdk/plugintest) over RPC.
//
// Results go to stdout (a table, or JSON with --output json), logs to stderr. It must never run
// a plugin that discovery refuses, never hide a good plugin because another is bad, and never
// write anything but lock files (and, through discovery, the Info cache).
package pluginscmd
