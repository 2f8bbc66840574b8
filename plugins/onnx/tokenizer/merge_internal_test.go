package tokenizer

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/lemctl/lemctl/plugins/onnx/internal/testenv"
)

// TestMergeLongEqualsShort checks the heap merge against GPT-2's reference loop on random
// words of every length, drawn from characters that have many merges.
func TestMergeLongEqualsShort(t *testing.T) {
	v := testenv.Vocab(t)
	tk, err := LoadFiles(v.EncoderJSON, v.VocabBPE)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	alphabets := []string{"etaoinshrdlu", "abcdefghijklmnopqrstuvwxyz", "0123456789", "!\"#$%&'()*+,-./:;<=>?@[]^_`{|}~", "aeé日本😀"}
	for i := 0; i < 2000; i++ {
		alpha := []rune(alphabets[i%len(alphabets)])
		n := 1 + r.IntN(300)
		w := make([]rune, n)
		for j := range w {
			w[j] = alpha[r.IntN(len(alpha))]
		}
		b := []byte(string(w))
		syms := make([]int32, len(b))
		for j := range b {
			syms[j] = tk.byteIDs[b[j]]
		}
		short := tk.mergeShort(append([]int32(nil), syms...))
		long := tk.mergeLong(append([]int32(nil), syms...))
		if !reflect.DeepEqual(short, long) {
			t.Fatalf("word %q: heap merge %v, reference %v", string(w), long, short)
		}
	}
}
