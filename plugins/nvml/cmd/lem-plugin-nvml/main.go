// Command lem-plugin-nvml is lemctl's NVIDIA GPU energy plugin; lemctl starts it.
package main

import (
	"github.com/lemctl/lemctl/plugins/nvml"
	"github.com/lemctl/lemctl/sdk"
)

func main() {
	sdk.Serve(nvml.NewPlugin(nil))
}
