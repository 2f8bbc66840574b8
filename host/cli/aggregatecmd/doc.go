// Package aggregatecmd is `lemctl aggregate EXP`: (re-)aggregate an experiment from its raw
// results in the repository (--results-dir), print the aggregate and set the exit code — 0 for a
// complete aggregate, 1 when the checks fail (strict) or the aggregate is partial (--no-strict),
// 2 for bad usage.
//
// It reaches the repository through the Factory (cliutil.Factory.Repository). It must never
// modify raw results and never replace an existing aggregate without --force.
package aggregatecmd
