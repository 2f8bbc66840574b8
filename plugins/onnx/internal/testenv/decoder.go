package testenv

import (
	"math"
	"path/filepath"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/lemctl/lemctl/plugins/onnx/model"
)

// decoder runs a generated model in ONNX Runtime, the way the engine will: left-padded batch,
// attention mask, positions from the mask, the KV cache fed back.
type Decoder struct {
	c       *model.Config
	session *ort.DynamicAdvancedSession
	inputs  []string
	outputs []string
}

// NewDecoder opens the model in dir (ORT must be initialised: call ORT first).
func NewDecoder(t testing.TB, dir string) *Decoder {
	t.Helper()
	c, err := model.ReadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	d := &Decoder{c: c, inputs: []string{model.InputIDs, model.AttentionMask, model.PositionIDs}, outputs: []string{model.Logits}}
	for i := 0; i < c.Layers; i++ {
		d.inputs = append(d.inputs, model.PastKey(i), model.PastValue(i))
		d.outputs = append(d.outputs, model.PresentKey(i), model.PresentValue(i))
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer opts.Destroy()
	opts.SetIntraOpNumThreads(1)
	opts.SetInterOpNumThreads(1)
	s, err := ort.NewDynamicAdvancedSession(filepath.Join(dir, model.ModelFile), d.inputs, d.outputs, opts)
	if err != nil {
		t.Fatalf("load %s in ONNX Runtime: %v", dir, err)
	}
	d.session = s
	t.Cleanup(func() { s.Destroy() })
	return d
}

// State is a batch's KV cache and mask.
type State struct {
	batch int
	mask  [][]int64 // [batch][past]
	kv    []*ort.Tensor[float32]
}

// Empty returns a state with an empty cache ([batch, kv_heads, 0, head_dim]).
func (d *Decoder) Empty(batch int) *State {
	st := &State{batch: batch, mask: make([][]int64, batch)}
	for i := 0; i < 2*d.c.Layers; i++ {
		tt, err := ort.NewTensor(ort.NewShape(int64(batch), int64(d.c.KVHeads), 0, int64(d.c.HeadDim)), []float32{})
		if err != nil {
			panic(err)
		}
		st.kv = append(st.kv, tt)
	}
	return st
}

// Step runs ids [batch][seq] with newMask [batch][seq] and returns logits [batch][seq][vocab].
func (d *Decoder) Step(t testing.TB, st *State, ids, newMask [][]int64) [][][]float32 {
	t.Helper()
	b, s := len(ids), len(ids[0])
	var flatIDs, flatMask, flatPos []int64
	for i := 0; i < b; i++ {
		st.mask[i] = append(st.mask[i], newMask[i]...)
		flatIDs = append(flatIDs, ids[i]...)
		flatMask = append(flatMask, st.mask[i]...)
		// Positions from the mask: real tokens before this one; padding gets 1 (as HF does).
		var cum int64
		past := len(st.mask[i]) - s
		for j, m := range st.mask[i] {
			cum += m
			if j >= past {
				pos := cum - 1
				if m == 0 {
					pos = 1
				}
				flatPos = append(flatPos, pos)
			}
		}
	}
	total := len(st.mask[0])
	must := func(v ort.Value, err error) ort.Value {
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	in := []ort.Value{
		must(ort.NewTensor(ort.NewShape(int64(b), int64(s)), flatIDs)),
		must(ort.NewTensor(ort.NewShape(int64(b), int64(total)), flatMask)),
		must(ort.NewTensor(ort.NewShape(int64(b), int64(s)), flatPos)),
	}
	for _, kv := range st.kv {
		in = append(in, kv)
	}
	out := make([]ort.Value, len(d.outputs))
	if err := d.session.Run(in, out); err != nil {
		t.Fatalf("run: %v", err)
	}
	for i := 0; i < 3; i++ {
		in[i].Destroy()
	}
	for i, kv := range st.kv {
		kv.Destroy()
		st.kv[i] = out[1+i].(*ort.Tensor[float32])
		if got := st.kv[i].GetShape(); got[2] != int64(total) {
			t.Fatalf("present %d has sequence %d, want %d", i, got[2], total)
		}
	}
	lt := out[0].(*ort.Tensor[float32])
	defer lt.Destroy()
	if sh := lt.GetShape(); !sh.Equals(ort.NewShape(int64(b), int64(s), int64(d.c.Vocab))) {
		t.Fatalf("logits shape %v", sh)
	}
	data := lt.GetData()
	v := d.c.Vocab
	res := make([][][]float32, b)
	for i := range res {
		res[i] = make([][]float32, s)
		for j := range res[i] {
			res[i][j] = append([]float32(nil), data[(i*s+j)*v:(i*s+j+1)*v]...)
		}
	}
	return res
}

// Argmax is the index of the largest value.
func Argmax(xs []float32) int64 {
	best := 0
	for i, x := range xs {
		if x > xs[best] {
			best = i
		}
	}
	return int64(best)
}

// MaxDiff is the largest absolute difference.
func MaxDiff(a, b []float32) float64 {
	var m float64
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

// Ones is n ones.
func Ones(n int) []int64 {
	o := make([]int64, n)
	for i := range o {
		o[i] = 1
	}
	return o
}

// Greedy decodes steps tokens from prompt with the KV cache and checks each step's logits
// against a full recompute without cache.
func Greedy(t testing.TB, d *Decoder, prompt []int64, steps int) ([]int64, [][]float32) {
	st := d.Empty(1)
	logits := d.Step(t, st, [][]int64{prompt}, [][]int64{Ones(len(prompt))})
	last := logits[0][len(prompt)-1]
	seq := append([]int64(nil), prompt...)
	var out []int64
	var all [][]float32
	for k := 0; k < steps; k++ {
		next := Argmax(last)
		out = append(out, next)
		all = append(all, last)
		seq = append(seq, next)
		last = d.Step(t, st, [][]int64{{next}}, [][]int64{{1}})[0][0]
		// Full recompute of the whole sequence without a cache gives the same logits.
		full := d.Step(t, d.Empty(1), [][]int64{seq}, [][]int64{Ones(len(seq))})[0][len(seq)-1]
		if diff := MaxDiff(full, last); diff > 1e-4 {
			t.Fatalf("step %d: KV-cache logits differ from full recompute by %g", k, diff)
		}
	}
	return out, all
}
