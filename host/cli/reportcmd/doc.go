// Package reportcmd is `lemctl report`: it writes one self-contained HTML page (host/report) for
// an experiment, a study (results/studies/<id>/study.json) or, with --compare, two experiments,
// to results/reports/<id>.html unless -o names another file, and prints its path. It has no
// statistics of its own: a compare page's differences and verdicts are `lemctl compare`'s
// (comparecmd over host/stats) and a study page's frontier and recommended point are `lemctl
// frontier`'s (frontiercmd); studies are read by studyload (host/study.Load).
//
// It reads results through the Factory's repository and the study file; it must never change a
// stored result, and never write a page that references anything on the network.
package reportcmd
