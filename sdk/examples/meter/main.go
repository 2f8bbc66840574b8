// Command lem-plugin-example-meter is the sdk's scriptable energy meter: its counters are a pure
// function of CLOCK_MONOTONIC and of its configuration, so the energy it reports has an exact
// ground truth. Host tests use it where no RAPL or NVML is available, and it is the smallest
// complete energy plugin to copy from. See ../README.md.
package main

import "github.com/lemctl/lemctl/sdk"

func main() { sdk.Serve(newPlugin()) }
