// Command lem-plugin-example-engine is the sdk's toy inference engine: it loads any artifact,
// generates deterministic token ids at a configured pace and times every token on the shared
// clock, so host tests can run without ONNX Runtime. It is also the smallest complete engine
// plugin to copy from. See ../README.md.
package main

import "github.com/lemctl/lemctl/sdk"

func main() { sdk.Serve(newPlugin()) }
