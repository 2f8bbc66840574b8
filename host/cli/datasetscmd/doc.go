// Package datasetscmd is `lemctl datasets`: it lists the built-in prompt sets and the dataset
// formats lemctl reads, and inspects a dataset (name, format, sha256, prompt and skipped counts).
//
// It must never modify a dataset or write anything but its listing to stdout.
package datasetscmd
