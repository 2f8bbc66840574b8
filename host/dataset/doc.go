// Package dataset turns a workload.dataset value into prompts: the built-in prompt set embedded
// in lemctl, synthetic prompts of an exact token length (through the model's Tokenizer), or a
// file in JSONL, Alpaca JSON, ShareGPT JSON or plain-text form. It reports each dataset's name,
// the sha256 of its source bytes, its prompt count and how many records were skipped; it
// samples deterministically from a seed and partitions prompts exactly across workers.
//
// It must never drop or duplicate a prompt silently (skipped records are counted, a short
// dataset is an error), never depend on math/rand's algorithms for anything that must be
// reproducible, and never import the config package or any plugin.
package dataset
