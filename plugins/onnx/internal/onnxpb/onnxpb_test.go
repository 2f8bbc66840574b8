package onnxpb

import (
	"errors"
	"reflect"
	"testing"
)

func sample() *Model {
	return &Model{
		IRVersion: 8, Opsets: []OpsetID{{Version: 17}}, ProducerName: "p", ProducerVersion: "1",
		Metadata: []Entry{{Key: "k", Value: "v"}, {Key: "empty", Value: ""}},
		Graph: &Graph{
			Name: "g",
			Nodes: []*Node{{Name: "n", OpType: "Add", Inputs: []string{"x", ""}, Outputs: []string{"y"},
				Attrs: []Attr{{Name: "axis", Type: AttrInt, I: -1}, {Name: "perm", Type: AttrInts, Ints: []int64{0, 2, 1}},
					{Name: "eps", Type: AttrFloat, F: 1e-5}, {Name: "value", Type: AttrTensor, T: &Tensor{DataType: Int64, Int64Data: []int64{3}}}}}},
			Initializers: []*Tensor{
				{Name: "w", Dims: []int64{2, 3}, DataType: Float, RawData: make([]byte, 24)},
				{Name: "e", Dims: []int64{4}, DataType: Float, Location: LocationExternal,
					External: []Entry{{Key: "location", Value: "d.bin"}, {Key: "offset", Value: "4096"}, {Key: "length", Value: "16"}}},
			},
			Inputs:  []ValueInfo{{Name: "x", ElemType: Int64, Shape: []Dim{{Param: "batch"}, {Value: 7}}, HasShape: true}},
			Outputs: []ValueInfo{{Name: "y", ElemType: Float, Shape: []Dim{{Param: "batch"}, {Value: 7}}, HasShape: true}},
		},
	}
}

func TestRoundTrip(t *testing.T) {
	m := sample()
	b := m.Marshal()
	if !reflect.DeepEqual(b, sample().Marshal()) {
		t.Fatal("Marshal is not deterministic")
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.IRVersion != 8 || got.ProducerName != "p" || !reflect.DeepEqual(got.Opsets, m.Opsets) || !reflect.DeepEqual(got.Metadata, m.Metadata) {
		t.Errorf("model fields: %+v", got)
	}
	g := got.Graph
	if g.Name != "g" || len(g.Nodes) != 1 || g.Nodes[0].OpType != "Add" || !reflect.DeepEqual(g.Nodes[0].Inputs, []string{"x", ""}) {
		t.Errorf("graph/nodes: %+v %+v", g, g.Nodes[0])
	}
	if !reflect.DeepEqual(g.Inputs, m.Graph.Inputs) || !reflect.DeepEqual(g.Outputs, m.Graph.Outputs) {
		t.Errorf("value infos: %+v %+v", g.Inputs, g.Outputs)
	}
	w, e := g.Initializers[0], g.Initializers[1]
	if w.Name != "w" || w.RawBytes != 24 || w.RawData != nil || w.Elements() != 6 || !reflect.DeepEqual(w.Dims, []int64{2, 3}) {
		t.Errorf("raw initializer: %+v", w)
	}
	if e.Location != LocationExternal || e.ExternalValue("location") != "d.bin" || e.ExternalValue("offset") != "4096" {
		t.Errorf("external initializer: %+v", e)
	}
}

func TestDecodeRejectsCorrupt(t *testing.T) {
	b := sample().Marshal()
	for name, in := range map[string][]byte{
		"empty":     {},
		"truncated": b[:len(b)-5],
		"garbage":   []byte("\x0a\xff\xff\xff\xff\x0fnot protobuf"),
		"no graph":  (&Model{IRVersion: 8}).Marshal(),
	} {
		if _, err := Decode(in); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(sample().Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		Decode(b) // must not panic
	})
}
