// Package examples holds lemctl's example experiment files. It embeds quickstart.toml so that
// `lemctl run` without a file measures the quickstart experiment; the other files are read from
// disk. It must never hold code beyond that embedding.
package examples

import _ "embed"

// Quickstart is examples/quickstart.toml, the experiment `lemctl run` uses when given no file.
//
//go:embed quickstart.toml
var Quickstart []byte

// QuickstartName is the name Quickstart is loaded under (messages, the default experiment name).
const QuickstartName = "quickstart.toml"
