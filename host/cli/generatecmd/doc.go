// Package generatecmd is `lemctl generate`: the smallest way to try a model. It discovers the
// loader and engine plugins, resolves the model, loads it, runs one static batch of one prompt
// (text or token ids, repeated --batch times), unloads it, and prints the generated ids and text
// with the batch's TTFT, ITL, E2E and tokens/s, all measured inside the engine plugin on the
// shared clock.
//
// Results go to stdout (a table, or JSON with --output json), logs to stderr. It measures no
// energy and writes no result files — `lemctl run` does that — and it never runs a plugin that
// discovery refuses.
package generatecmd
