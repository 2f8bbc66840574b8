// Package resultstest holds test doubles for code that reads and writes results: Memory, an
// in-memory sdk.Repository with the same contract as the fsstore plugin (including its id
// validation and sentinel errors), LoadTree, which fills a Memory from a directory in fsstore's
// layout (the committed fixtures under testdata/), and Worker, a builder of deterministic raw
// results with known energy, tokens and latencies.
//
// It is for tests only: it must never be imported by production code, and Memory makes no
// durability promise.
package resultstest
