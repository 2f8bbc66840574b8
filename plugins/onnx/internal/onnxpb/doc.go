// Package onnxpb reads and writes the subset of the ONNX protobuf format (onnx.proto, IR 8)
// that lemctl needs: models, graphs, nodes, attributes, tensors with raw or external data, and
// value infos. It encodes deterministically (fields in number order, no maps), so the same Go
// value always gives the same bytes, and it decodes without copying tensor payloads: Decode
// records each initializer's size, never its data.
//
// It must never load weights into memory it does not need, depend on cgo, or accept a file it
// cannot fully parse (a truncated or corrupt model is an error, not a partial result).
package onnxpb
