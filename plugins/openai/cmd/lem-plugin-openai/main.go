// Command lem-plugin-openai is lemctl's plugin for models served over an OpenAI-compatible HTTP
// API (vLLM, lemctl serve, …): loader and engine. lemctl starts it; it is not run by hand.
package main

import (
	"github.com/lemctl/lemctl/plugins/openai"
	"github.com/lemctl/lemctl/sdk"
)

func main() {
	sdk.Serve(openai.New())
}
