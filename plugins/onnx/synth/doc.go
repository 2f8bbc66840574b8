// Package synth generates decoder-only language models as ONNX files, deterministically, in
// pure Go: GPT-2 and Llama architectures at preset shapes (Presets), opset 17, float32 — or with
// every matrix quantised to int8 or int4 for ONNX Runtime's MatMulNBits (preset suffix -q8,
// -q4; see Precision) — with the
// input and output names of a Hugging Face optimum export (input_ids, attention_mask,
// position_ids, past_key_values.{i}.key|value → logits, present.{i}.key|value), weights in
// external data (model.onnx + model.onnx.data) streamed to disk, and the same config and
// tokenizer files an optimum directory has. Ensure caches a generated model by preset (with its
// precision suffix), seed and GeneratorVersion.
//
// The weights are random: a synthetic model measures cost, never quality. Generation must never
// depend on anything but (preset, seed, GeneratorVersion, the pinned vocabulary files) — no
// clock, no global random source, no map iteration order — so a model is byte-identical
// wherever it is generated; and it must never leave a partial model where a reader can see it.
package synth
