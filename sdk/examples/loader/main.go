// Command lem-plugin-example-loader is the sdk's example model loader: it resolves
// "example:<name>" references to a synthetic artifact of a small declared shape and tokenizes
// text one id per byte, exactly and reversibly. It is the smallest complete loader plugin to copy
// from. See ../README.md.
package main

import "github.com/lemctl/lemctl/sdk"

func main() { sdk.Serve(newPlugin()) }
