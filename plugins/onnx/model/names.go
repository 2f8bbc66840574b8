package model

import "fmt"

// Names of the graph inputs and outputs of a decoder exported by Hugging Face optimum
// (text-generation-with-past), which synthetic models use too.
const (
	InputIDs      = "input_ids"
	AttentionMask = "attention_mask"
	PositionIDs   = "position_ids"
	Logits        = "logits"
)

// PastKey is the name of layer i's key-cache input, [batch, kv_heads, past, head_dim].
func PastKey(i int) string { return fmt.Sprintf("past_key_values.%d.key", i) }

// PastValue is the name of layer i's value-cache input.
func PastValue(i int) string { return fmt.Sprintf("past_key_values.%d.value", i) }

// PresentKey is the name of layer i's key-cache output, [batch, kv_heads, past+seq, head_dim].
func PresentKey(i int) string { return fmt.Sprintf("present.%d.key", i) }

// PresentValue is the name of layer i's value-cache output.
func PresentValue(i int) string { return fmt.Sprintf("present.%d.value", i) }
