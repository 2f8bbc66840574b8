// Package tokenizer is GPT-2's byte-level BPE in Go: the GPT-2 pre-tokenizer pattern (its
// negative lookahead emulated by hand, since Go's regexp has none), the byte→unicode alphabet,
// merges applied by rank, and a bounded word cache. It loads vocab.json + merges.txt or a
// Hugging Face tokenizer.json with a BPE model and a ByteLevel pre-tokenizer, and it encodes
// exactly as gpt-3-encoder's JavaScript encoder does (the tests compare the two on hundreds of
// strings), whitespace defined as JavaScript's \s.
//
// Text is always plain text: special tokens written in it are not recognised; callers add
// special ids (EOS, BOS) by id. It must never drop or alter input bytes: any byte sequence,
// valid UTF-8 or not, encodes to ids whose decoding gives the same bytes back.
package tokenizer
