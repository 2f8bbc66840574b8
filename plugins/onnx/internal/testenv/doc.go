// Package testenv finds what the onnx plugin's tests need from outside the repository — the
// `make setup` folder with ONNX Runtime and the GPT-2 vocabulary, node, /usr/bin/python3 with
// onnx — and decides what happens when something is absent: with CI=true the test fails (CI
// must run everything), otherwise it is skipped with the reason.
//
// It is imported only by tests and must never download anything.
package testenv
