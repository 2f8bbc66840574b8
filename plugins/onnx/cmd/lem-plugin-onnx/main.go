// Command lem-plugin-onnx is lemctl's ONNX Runtime plugin: loader and engine.
// lemctl starts it; it is not run by hand.
package main

import (
	"github.com/lemctl/lemctl/plugins/onnx"
	"github.com/lemctl/lemctl/sdk"
)

func main() {
	sdk.Serve(onnx.New())
}
