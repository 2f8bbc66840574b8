// Package onnx assembles the onnx plugin — ONNX Runtime models for lemctl — from its parts:
// the loader (package loader: optimum directories and synthetic models, tokenizer) and, from
// issue M1.4, the engine. New returns the sdk.Plugin that cmd/lem-plugin-onnx serves and that
// the conformance tests drive in-process.
//
// It holds no logic of its own beyond wiring, and it must never import host packages.
package onnx
