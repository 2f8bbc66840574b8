// Package store is the fsstore repository: lemctl results as files under one root directory.
//
//	<root>/raw/<exp>/process_<rank>.json    a worker's raw result, exactly the bytes it sent
//	<root>/raw/<exp>/.completed_<rank>      its completion marker (JSON: rank, sha256, path, time)
//	<root>/aggregated/<exp>.json            the aggregate
//	<root>/runs/<exp>/manifest.json         the run manifest
//
// Every write is atomic and durable: a temp file in the destination directory, write, fsync,
// rename (or link(2) where the name must not exist yet), fsync of the directory. Several processes
// may write into one root at once.
//
// ListRaw reports a marker that does not parse or names another rank as that rank's
// MarkerProblem, never as a failure of the listing; ListStrays (sdk.StrayLister) lists every other
// name in raw/<exp>/ so that the aggregation can report it.
//
// It must never tear or lose a file, never overwrite a raw result, never accept an id that could
// leave the root (separators, "..", a leading dot), and never interpret the bytes it stores.
package store
