// Package configcmd is `lemctl config validate` and `lemctl config show`: it checks experiment
// files and prints the effective configuration with its hash, through host/config.
//
// It must never write a file, start a run, or print anything but results on stdout (errors and
// warnings go to stderr).
package configcmd
