// Package loader is the onnx plugin's sdk.Loader: it resolves a model reference — a directory
// in Hugging Face optimum export layout, or synthetic:<preset>[?seed=N], generated into a cache
// folder on first use — to an sdk.Artifact (files, sha256, architecture, parameters counted from
// the initialisers, FLOPs coefficients, KV layout, EOS ids, context length, tokenizer), and
// tokenizes and detokenizes text with the model's byte-level BPE tokenizer.
//
// It never sends or reads weights beyond hashing them, never runs a model, and never turns a
// bad reference into a crash: every failure is an error wrapping an sdk sentinel
// (ErrInvalidArgument, ErrNotFound, ErrFailedPrecondition) that names the file, key or
// reference at fault and what would be valid.
package loader
