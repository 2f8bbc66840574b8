// Package model is what the onnx plugin's loader and engine share about a model directory in
// Hugging Face optimum layout: ReadConfig (layers, heads, KV heads, head dim, vocabulary,
// context length, EOS/BOS/pad ids), Inspect (files, graph inputs and outputs, parameter count
// from the initialisers, dtype, sha256), the FLOPs coefficients of docs/methodology.md, and the ONNX
// Runtime library: FindLibrary (library_path, $ONNXRUNTIME_SHARED_LIBRARY_PATH, the `make
// setup` folder), CheckLibrary (version and C API check without initialising) and InitORT.
//
// It must never read weights into memory (the graph is memory-mapped and tensor payloads are
// skipped), never run a model, and never initialise ONNX Runtime from a library it has not
// checked. Errors wrap the sdk's sentinels so they keep their meaning across the RPC.
package model
