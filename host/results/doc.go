// Package results is lemctl's result model: the Go types of a worker's raw result, of the
// aggregated result of an experiment and of a run manifest, with exactly the stable JSON keys of
// docs/results.md (keys that are a contract), plus the small statistics every producer of those
// figures shares (latency summaries with type-7 percentiles, repeat statistics with a Student-t
// confidence interval).
//
// A figure that was not measured is JSON null, never 0: every such field is a pointer. The keys
// are a contract with tools outside lemctl; add fields freely, never rename or retype one within
// schema version "1". docs/results.md describes every key.
//
// This package must never do I/O (no files, no plugins, no repository): it only defines, encodes,
// decodes and summarises. Storage is a repository plugin's job; aggregation is host/aggregate's.
package results
