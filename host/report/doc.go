// Package report renders lemctl's HTML reports: one self-contained page for an experiment, a
// study or two experiments side by side. A page opens offline: its styles, its one font and its
// charts (SVG drawn with gonum.org/v1/plot) are inline, it references nothing on the network and
// needs no JavaScript. The package only reads the results it is given: it never loads or
// changes stored results (host/cli/reportcmd does the loading), never computes a figure that a
// result does not hold except for presentation (downsampling, CDFs, power from cumulative
// energy), never makes comparisons or frontiers itself (a Comparer and a Frontier are given to it),
// and shows what was not measured as "not measured" rather than inventing it.
package report
