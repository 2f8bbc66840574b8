// Package resultscmd is `lemctl results`: list the experiments of a results repository, show an
// aggregate (or each worker's raw result) as a table or JSON, and export an aggregate as JSON or
// CSV. It also holds the hook, OpenRepository, through which every results command (and
// `lemctl aggregate`) reaches the repository plugin, and the table renderers, among them the one
// findings renderer (WriteFindings) that `lemctl run` and `lemctl measure` use too.
//
// Results go to the command's stdout and nothing else; it must never write to or change a
// repository, and never print an unmeasured figure as 0 (tables show "—", CSV an empty cell).
package resultscmd
