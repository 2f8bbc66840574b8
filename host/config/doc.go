// Package config reads an experiment's TOML file into the effective configuration a run uses:
// it rejects unknown keys (with a "did you mean"), checks every type, range and relation,
// reports every problem in one pass as "file:line: key.path: message (valid: …)", applies the
// command-line overrides (-d, -n, --set) with a record of where each value came from, fills
// every default, has each plugin's own table checked by that plugin (through PluginConfigurer),
// and computes the config hash (Hash) that `lemctl run` records and `lemctl config show` prints.
//
// The schema in schema.go is the one source of keys, defaults and ranges; docs/config.md
// documents it and a test keeps the two in step.
//
// It must never write anything, never start a plugin itself (the PluginConfigurer does), and
// never stop at the first error when it could report more.
package config
