// Command lem-plugin-estimate serves the estimate energy plugin (plugins/estimate).
package main

import (
	"github.com/lemctl/lemctl/plugins/estimate"
	"github.com/lemctl/lemctl/sdk"
)

func main() {
	sdk.Serve(estimate.NewPlugin(sdk.Logger(estimate.Name)))
}
