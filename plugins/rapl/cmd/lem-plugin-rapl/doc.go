// Command lem-plugin-rapl is lemctl's energy plugin for Linux powercap RAPL counters (CPU
// package, DRAM, psys). lemctl starts it over go-plugin; run by hand it only says so.
//
// It is a thin main: all logic lives in package rapl. It must never write to standard output,
// which go-plugin reserves for its handshake.
package main
