// Package resultscmd is `lemctl results`: list the experiments of a results repository, show an
// aggregate (or each worker's raw result) as a table or JSON, and export an aggregate as JSON or
// CSV. It reaches the repository through the Factory (cliutil.Factory.Repository) and holds the
// report renderers, among them the one findings renderer (WriteFindings) that `lemctl run` and
// `lemctl measure` use too; tables and JSON go through host/cliutil/render.
//
// Results go to the command's stdout and nothing else; it must never write to or change a
// repository, and never print an unmeasured figure as 0 (tables show "—", CSV an empty cell).
package resultscmd
