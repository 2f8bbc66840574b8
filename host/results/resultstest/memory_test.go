package resultstest

import (
	"testing"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/plugintest"
)

// The test double keeps the repository contract the real plugin keeps: the sdk's conformance
// suite, over gRPC, passes on it.
func TestMemoryConformance(t *testing.T) {
	plugintest.Run(t, &sdk.Plugin{Name: "memory", Version: "0.0.0", Repository: NewMemory()}, plugintest.Options{})
}
