package main

import (
	"github.com/lemctl/lemctl/plugins/rapl"
	"github.com/lemctl/lemctl/sdk"
)

func main() {
	sdk.Serve(rapl.NewPlugin(sdk.Logger(rapl.Name)))
}
