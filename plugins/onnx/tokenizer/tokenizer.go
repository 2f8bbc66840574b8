package tokenizer

import (
	"bufio"
	"container/heap"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/lemctl/lemctl/sdk"
)

// Tokenizer is a byte-level BPE tokenizer (GPT-2's). It is safe for concurrent use.
type Tokenizer struct {
	vocab   map[string]int32
	tokens  []string // id → token
	byteIDs [256]int32
	// merges maps a pair of ids to its rank and the id of the merged token.
	merges         map[uint64]merge
	addPrefixSpace bool

	mu    sync.RWMutex
	cache map[string][]int32
}

type merge struct{ rank, id int32 }

// cacheLimit bounds the word cache; when full it is cleared.
const cacheLimit = 1 << 16

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// byteToRune is GPT-2's bytes_to_unicode: printable bytes map to themselves, the others to
// U+0100 onwards, so every byte sequence is a string of visible characters.
var byteToRune, runeToByte = func() ([256]rune, map[rune]byte) {
	var b2r [256]rune
	r2b := map[rune]byte{}
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			b2r[b] = rune(b)
		} else {
			b2r[b] = rune(256 + n)
			n++
		}
		r2b[b2r[b]] = byte(b)
	}
	return b2r, r2b
}()

// Load reads the tokenizer of a model directory from files: a tokenizer.json, or a vocab.json
// and a merges.txt (in any order).
func Load(files []string) (*Tokenizer, error) {
	var vocab, merges, tj string
	for _, f := range files {
		switch filepath.Base(f) {
		case "tokenizer.json":
			tj = f
		case "vocab.json", "encoder.json":
			vocab = f
		case "merges.txt", "vocab.bpe":
			merges = f
		}
	}
	switch {
	case tj != "":
		return LoadTokenizerJSON(tj)
	case vocab != "" && merges != "":
		return LoadFiles(vocab, merges)
	}
	return nil, fmt.Errorf("%w: no tokenizer files among %q (need tokenizer.json, or vocab.json + merges.txt)", sdk.ErrNotFound, files)
}

// LoadFiles reads GPT-2 style vocab.json (token → id) and merges.txt ("a b" per line, ranked
// by line, after an optional "#version" header).
func LoadFiles(vocabPath, mergesPath string) (*Tokenizer, error) {
	raw, err := os.ReadFile(vocabPath)
	if err != nil {
		return nil, fmt.Errorf("%w: tokenizer vocabulary: %v", sdk.ErrNotFound, err)
	}
	var vocab map[string]int32
	if err := json.Unmarshal(raw, &vocab); err != nil {
		return nil, fmt.Errorf("%w: %s is not a JSON object of token → id: %v", sdk.ErrInvalidArgument, vocabPath, err)
	}
	f, err := os.Open(mergesPath)
	if err != nil {
		return nil, fmt.Errorf("%w: tokenizer merges: %v", sdk.ErrNotFound, err)
	}
	defer f.Close()
	var pairs [][2]string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimRight(sc.Text(), "\r")
		if (line == 1 && strings.HasPrefix(s, "#version")) || strings.TrimSpace(s) == "" {
			continue
		}
		parts := strings.Fields(s)
		if len(parts) != 2 {
			return nil, fmt.Errorf("%w: %s:%d: a merge is two tokens separated by a space, got %q", sdk.ErrInvalidArgument, mergesPath, line, s)
		}
		pairs = append(pairs, [2]string{parts[0], parts[1]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", mergesPath, err)
	}
	return build(vocab, pairs, false, vocabPath)
}

// tokenizerJSON is the part of a Hugging Face tokenizer.json this package reads.
type tokenizerJSON struct {
	Model struct {
		Type   string           `json:"type"`
		Vocab  map[string]int32 `json:"vocab"`
		Merges json.RawMessage  `json:"merges"`
	} `json:"model"`
	PreTokenizer *struct {
		Type           string `json:"type"`
		AddPrefixSpace bool   `json:"add_prefix_space"`
		PreTokenizers  []struct {
			Type           string `json:"type"`
			AddPrefixSpace bool   `json:"add_prefix_space"`
		} `json:"pretokenizers"`
	} `json:"pre_tokenizer"`
	AddedTokens []struct {
		ID      int32  `json:"id"`
		Content string `json:"content"`
	} `json:"added_tokens"`
}

// LoadTokenizerJSON reads a Hugging Face tokenizer.json whose model is byte-level BPE
// (model.vocab + model.merges, merges as "a b" strings or [a, b] pairs).
func LoadTokenizerJSON(path string) (*Tokenizer, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: tokenizer: %v", sdk.ErrNotFound, err)
	}
	var tj tokenizerJSON
	if err := json.Unmarshal(raw, &tj); err != nil {
		return nil, fmt.Errorf("%w: %s is not a valid tokenizer.json: %v", sdk.ErrInvalidArgument, path, err)
	}
	if tj.Model.Type != "" && tj.Model.Type != "BPE" {
		return nil, fmt.Errorf("%w: %s: model.type is %q; only byte-level BPE tokenizers are supported", sdk.ErrInvalidArgument, path, tj.Model.Type)
	}
	byteLevel, prefix := false, false
	if pt := tj.PreTokenizer; pt != nil {
		if pt.Type == "ByteLevel" {
			byteLevel, prefix = true, pt.AddPrefixSpace
		}
		for _, p := range pt.PreTokenizers {
			if p.Type == "ByteLevel" {
				byteLevel, prefix = true, p.AddPrefixSpace
			}
		}
	}
	if !byteLevel {
		return nil, fmt.Errorf("%w: %s: pre_tokenizer is not ByteLevel; only byte-level BPE tokenizers (GPT-2 style) are supported", sdk.ErrInvalidArgument, path)
	}
	var asStrings []string
	var pairs [][2]string
	if err := json.Unmarshal(tj.Model.Merges, &asStrings); err == nil {
		for i, s := range asStrings {
			parts := strings.Split(s, " ")
			if len(parts) != 2 {
				return nil, fmt.Errorf("%w: %s: model.merges[%d] = %q is not two tokens separated by a space", sdk.ErrInvalidArgument, path, i, s)
			}
			pairs = append(pairs, [2]string{parts[0], parts[1]})
		}
	} else if err := json.Unmarshal(tj.Model.Merges, &pairs); err != nil {
		return nil, fmt.Errorf("%w: %s: model.merges must be a list of \"a b\" strings or [a, b] pairs", sdk.ErrInvalidArgument, path)
	}
	vocab := tj.Model.Vocab
	for _, at := range tj.AddedTokens {
		if _, ok := vocab[at.Content]; !ok {
			vocab[at.Content] = at.ID
		}
	}
	return build(vocab, pairs, prefix, path)
}

func build(vocab map[string]int32, pairs [][2]string, addPrefixSpace bool, src string) (*Tokenizer, error) {
	if len(vocab) == 0 {
		return nil, fmt.Errorf("%w: %s: empty vocabulary", sdk.ErrInvalidArgument, src)
	}
	t := &Tokenizer{vocab: vocab, merges: make(map[uint64]merge, len(pairs)), addPrefixSpace: addPrefixSpace, cache: map[string][]int32{}}
	maxID := int32(-1)
	for tok, id := range vocab {
		if id < 0 {
			return nil, fmt.Errorf("%w: %s: token %q has negative id %d", sdk.ErrInvalidArgument, src, tok, id)
		}
		maxID = max(maxID, id)
	}
	if int(maxID) >= 4*len(vocab)+1024 {
		return nil, fmt.Errorf("%w: %s: token ids go up to %d for %d tokens; ids must be dense", sdk.ErrInvalidArgument, src, maxID, len(vocab))
	}
	t.tokens = make([]string, maxID+1)
	for tok, id := range vocab {
		t.tokens[id] = tok
	}
	for b := 0; b < 256; b++ {
		id, ok := vocab[string(byteToRune[b])]
		if !ok {
			return nil, fmt.Errorf("%w: %s: the vocabulary lacks the byte token %q (byte %d); not a byte-level BPE vocabulary", sdk.ErrInvalidArgument, src, string(byteToRune[b]), b)
		}
		t.byteIDs[b] = id
	}
	for rank, p := range pairs {
		a, okA := vocab[p[0]]
		b, okB := vocab[p[1]]
		m, okM := vocab[p[0]+p[1]]
		if !okA || !okB || !okM {
			return nil, fmt.Errorf("%w: %s: merge %d (%q %q) uses a token that is not in the vocabulary", sdk.ErrInvalidArgument, src, rank+1, p[0], p[1])
		}
		k := pairKey(a, b)
		if _, dup := t.merges[k]; !dup { // the first (lowest) rank wins
			t.merges[k] = merge{rank: int32(rank), id: m}
		}
	}
	return t, nil
}

// VocabSize is the number of ids (the largest id + 1).
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// Token returns the vocabulary string of id.
func (t *Tokenizer) Token(id int32) (string, bool) {
	if id < 0 || int(id) >= len(t.tokens) || t.tokens[id] == "" {
		return "", false
	}
	return t.tokens[id], true
}

// ID returns the id of a vocabulary string (e.g. "<|endoftext|>").
func (t *Tokenizer) ID(token string) (int32, bool) {
	id, ok := t.vocab[token]
	return id, ok
}

// Encode tokenizes text. Special tokens written in the text (e.g. "<|endoftext|>") are plain
// text, as in gpt-3-encoder; add special ids by id.
func (t *Tokenizer) Encode(text string) []int32 {
	if t.addPrefixSpace && text != "" && !strings.HasPrefix(text, " ") {
		text = " " + text
	}
	var ids []int32
	for _, w := range PreTokenize(text) {
		ids = append(ids, t.word(w)...)
	}
	return ids
}

// word returns the BPE ids of one pre-token.
func (t *Tokenizer) word(w string) []int32 {
	cacheable := len(w) <= maxCachedWord
	if cacheable {
		t.mu.RLock()
		ids, ok := t.cache[w]
		t.mu.RUnlock()
		if ok {
			return ids
		}
	}
	syms := make([]int32, len(w))
	for i := 0; i < len(w); i++ {
		syms[i] = t.byteIDs[w[i]]
	}
	if len(syms) > longWord {
		syms = t.mergeLong(syms)
	} else {
		syms = t.mergeShort(syms)
	}
	if cacheable {
		t.mu.Lock()
		if len(t.cache) >= cacheLimit {
			t.cache = map[string][]int32{}
		}
		t.cache[w] = syms
		t.mu.Unlock()
	}
	return syms
}

// Words longer than longWord bytes are merged with a heap (O(n log n)) instead of the simple
// quadratic loop; words longer than maxCachedWord are not cached.
const (
	longWord      = 64
	maxCachedWord = 256
)

// mergeShort is GPT-2's reference loop: merge the lowest-ranked pair everywhere, left to
// right, until no pair has a rank.
func (t *Tokenizer) mergeShort(syms []int32) []int32 {
	for len(syms) > 1 {
		best := merge{rank: -1}
		var bestA, bestB int32
		for i := 0; i+1 < len(syms); i++ {
			if m, ok := t.merges[pairKey(syms[i], syms[i+1])]; ok && (best.rank < 0 || m.rank < best.rank) {
				best, bestA, bestB = m, syms[i], syms[i+1]
			}
		}
		if best.rank < 0 {
			break
		}
		out := syms[:0]
		for i := 0; i < len(syms); i++ {
			if i+1 < len(syms) && syms[i] == bestA && syms[i+1] == bestB {
				out = append(out, best.id)
				i++
			} else {
				out = append(out, syms[i])
			}
		}
		syms = out
	}
	return syms
}

// mergeLong gives mergeShort's result in O(n log n): symbols form a linked list and candidate
// pairs a heap ordered by (rank, position). It equals the reference loop because a merge made
// from a merged symbol always ranks after the merge that made it (BPE learns merges in order),
// so popping by rank, then position, merges every occurrence of the best pair left to right
// before any pair it creates.
func (t *Tokenizer) mergeLong(syms []int32) []int32 {
	n := len(syms)
	prev, next := make([]int, n), make([]int, n)
	alive := make([]bool, n)
	for i := range syms {
		prev[i], next[i], alive[i] = i-1, i+1, true
	}
	h := &pairHeap{}
	push := func(i int) {
		if i < 0 || next[i] >= n {
			return
		}
		if m, ok := t.merges[pairKey(syms[i], syms[next[i]])]; ok {
			heap.Push(h, cand{rank: m.rank, pos: i, a: syms[i], b: syms[next[i]], id: m.id})
		}
	}
	for i := 0; i+1 < n; i++ {
		push(i)
	}
	for h.Len() > 0 {
		c := heap.Pop(h).(cand)
		j := next[c.pos]
		// Stale: the left symbol was merged away or changed, or its right neighbour changed.
		if !alive[c.pos] || j >= n || syms[c.pos] != c.a || syms[j] != c.b {
			continue
		}
		syms[c.pos] = c.id
		alive[j] = false
		next[c.pos] = next[j]
		if next[j] < n {
			prev[next[j]] = c.pos
		}
		push(prev[c.pos])
		push(c.pos)
	}
	out := make([]int32, 0, n)
	for i := 0; i < n; i = next[i] {
		out = append(out, syms[i])
	}
	return out
}

type cand struct {
	rank     int32
	pos      int
	a, b, id int32
}

type pairHeap []cand

func (h pairHeap) Len() int { return len(h) }
func (h pairHeap) Less(i, j int) bool {
	return h[i].rank < h[j].rank || h[i].rank == h[j].rank && h[i].pos < h[j].pos
}
func (h pairHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pairHeap) Push(x any)   { *h = append(*h, x.(cand)) }
func (h *pairHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Decode turns ids back into text. Byte sequences that are not valid UTF-8 (a character split
// across the ids given) become U+FFFD, one per maximal invalid subpart, as the WHATWG decoder
// (and so gpt-3-encoder) does. An id outside the vocabulary is an error.
func (t *Tokenizer) Decode(ids []int32) (string, error) {
	b, err := t.DecodeBytes(ids)
	if err != nil {
		return "", err
	}
	return ValidUTF8(b), nil
}

// DecodeBytes returns the bytes ids stand for, exactly (Encode's inverse on any input).
func (t *Tokenizer) DecodeBytes(ids []int32) ([]byte, error) {
	var b []byte
	for i, id := range ids {
		var ok bool
		if b, ok = t.AppendBytes(b, id); !ok {
			return nil, fmt.Errorf("%w: token id %d at index %d is not in the vocabulary (valid: 0..%d)", sdk.ErrInvalidArgument, id, i, len(t.tokens)-1)
		}
	}
	return b, nil
}

// AppendBytes appends the bytes id stands for to b (false: id is not in the vocabulary, b
// unchanged). It allocates only when b must grow: the streaming detokenizer's per-token step.
func (t *Tokenizer) AppendBytes(b []byte, id int32) ([]byte, bool) {
	tok, ok := t.Token(id)
	if !ok {
		return b, false
	}
	for _, r := range tok {
		if c, ok := runeToByte[r]; ok {
			b = append(b, c)
		} else {
			b = utf8.AppendRune(b, r) // an added token outside the byte alphabet
		}
	}
	return b, true
}

// ValidUTF8 decodes b as UTF-8 the WHATWG way: each maximal subpart of an ill-formed sequence
// becomes one U+FFFD.
func ValidUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	for i := 0; i < len(b); {
		c := b[i]
		if c < 0x80 {
			sb.WriteByte(c)
			i++
			continue
		}
		need, lo, hi := 0, byte(0x80), byte(0xBF)
		switch {
		case c >= 0xC2 && c <= 0xDF:
			need = 1
		case c == 0xE0:
			need, lo = 2, 0xA0
		case c == 0xED:
			need, hi = 2, 0x9F
		case c >= 0xE1 && c <= 0xEF:
			need = 2
		case c == 0xF0:
			need, lo = 3, 0x90
		case c == 0xF4:
			need, hi = 3, 0x8F
		case c >= 0xF1 && c <= 0xF3:
			need = 3
		default:
			sb.WriteRune(utf8.RuneError)
			i++
			continue
		}
		j := i + 1
		ok := true
		for k := 0; k < need; k++ {
			if j >= len(b) || b[j] < lo || b[j] > hi {
				ok = false
				break
			}
			lo, hi = 0x80, 0xBF
			j++
		}
		if ok {
			sb.Write(b[i:j])
		} else {
			sb.WriteRune(utf8.RuneError)
		}
		i = j
	}
	return sb.String()
}

// ---- pre-tokenizer --------------------------------------------------------------------------

// Character classes of the GPT-2 pre-tokenizer pattern
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
const (
	classSpace = iota
	classLetter
	classNumber
	classOther
)

// isSpace is JavaScript's \s (the reference encoder's): the Unicode space separators, the
// line terminators, tab, vertical tab, form feed and U+FEFF (not U+0085).
func isSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0xFEFF:
		return true
	}
	return r >= 0x2000 && r <= 0x200A
}

func class(r rune) int {
	switch {
	case isSpace(r):
		return classSpace
	case unicode.IsLetter(r):
		return classLetter
	case unicode.IsNumber(r):
		return classNumber
	}
	return classOther // also bytes that are not valid UTF-8
}

var contractions = []string{"s", "t", "re", "ve", "m", "ll", "d"}

// PreTokenize splits text the way GPT-2's pattern does. Go's regexp has no lookahead, so the
// pattern is matched by hand, alternative by alternative, with the same leftmost-first rules.
func PreTokenize(text string) []string {
	var out []string
	for i := 0; i < len(text); {
		n := matchAt(text, i)
		out = append(out, text[i:i+n])
		i += n
	}
	return out
}

// run returns the length in bytes of the run of class c starting at i.
func run(s string, i, c int) int {
	j := i
	for j < len(s) {
		r, w := utf8.DecodeRuneInString(s[j:])
		if class(r) != c {
			break
		}
		j += w
	}
	return j - i
}

// matchAt returns the length of the pattern's match at i (always ≥ 1 byte).
func matchAt(s string, i int) int {
	r0, w0 := utf8.DecodeRuneInString(s[i:])
	if r0 == '\'' {
		for _, c := range contractions {
			if strings.HasPrefix(s[i+1:], c) {
				return 1 + len(c)
			}
		}
	}
	c0 := class(r0)
	if r0 == ' ' && i+1 < len(s) { // " ?X+": a space, then a run of letters, digits or others
		r1, _ := utf8.DecodeRuneInString(s[i+1:])
		if c1 := class(r1); c1 != classSpace {
			return 1 + run(s, i+1, c1)
		}
	}
	if c0 != classSpace {
		return run(s, i, c0)
	}
	// \s+(?!\S) — the whitespace run, less its last character when a non-space follows — or
	// else \s+ (a single whitespace character before a non-space).
	n := run(s, i, classSpace)
	if i+n == len(s) {
		return n
	}
	_, lastW := utf8.DecodeLastRuneInString(s[i : i+n])
	if n > lastW {
		return n - lastW
	}
	return w0
}
