// Package aggregate is lemctl's late aggregation: it reads an experiment's raw per-worker
// results through an sdk.Repository (the fsstore plugin over gRPC, or any other), checks that
// they are complete and consistent, and combines them per the rules of docs/results.md into one
// aggregated result, which it stores back through the repository.
//
// Checks: one completion marker per raw result, naming its rank, ranks 0..N−1 exactly, each raw
// file's sha256 equal to its marker's, unique device slots, windows that overlap by ≥ 50 % of the shortest,
// and one config hash, engine and model. Strict mode (the default) refuses to aggregate when any
// fails (*CheckError); NoStrict aggregates what is there and records each failure as an error
// finding and a partial reason. A problem of one rank's files (a marker that does not parse or
// names another rank, a raw result that does not parse, names another rank or changed) leaves
// that rank out with a finding naming the file; it never fails the other ranks. Names among the
// raw results that are not read (sdk.StrayLister) are stray_file warnings.
//
// Energy is deduplicated by (host, domain id): a domain several workers saw is measured once,
// over the union of their windows, by stitching their cumulative curves — never by adding their
// views. energy.total_j sums, per host, the domains host/energy.CountedSet counts (a node domain
// instead of the package, DRAM and GPU domains it contains). The verdict is results.ValidityOf
// over every finding and every domain's health: one invalid rank makes the aggregate invalid.
//
// It must never re-measure, never modify or delete raw results, never sum overlapping views of
// one domain, never report an unmeasured figure as 0, and never depend on map order or on
// anything but the raw bytes and the options (its output is byte-for-byte reproducible apart
// from created_unix_ns).
package aggregate
