package onnxpb

import (
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Tensor element types (TensorProto.DataType).
const (
	Float    int32 = 1
	Uint8    int32 = 2
	Int8     int32 = 3
	Int32    int32 = 6
	Int64    int32 = 7
	Bool     int32 = 9
	Float16  int32 = 10
	Double   int32 = 11
	BFloat16 int32 = 16
)

// ElemSize returns the size in bytes of one element of data type dt, or 0 when unknown.
func ElemSize(dt int32) int64 {
	switch dt {
	case Float, Int32:
		return 4
	case Int64, Double:
		return 8
	case Uint8, Int8, Bool:
		return 1
	case Float16, BFloat16:
		return 2
	}
	return 0
}

// IsFloat reports whether dt is a floating-point type (weights, as opposed to indices/shapes).
func IsFloat(dt int32) bool {
	return dt == Float || dt == Float16 || dt == BFloat16 || dt == Double
}

// TypeName names a data type for messages.
func TypeName(dt int32) string {
	switch dt {
	case Float:
		return "float32"
	case Float16:
		return "float16"
	case BFloat16:
		return "bfloat16"
	case Double:
		return "float64"
	case Int64:
		return "int64"
	case Int32:
		return "int32"
	case Bool:
		return "bool"
	case Uint8:
		return "uint8"
	case Int8:
		return "int8"
	}
	return fmt.Sprintf("type%d", dt)
}

// Attribute types (AttributeProto.AttributeType).
const (
	AttrFloat  int32 = 1
	AttrInt    int32 = 2
	AttrString int32 = 3
	AttrTensor int32 = 4
	AttrFloats int32 = 6
	AttrInts   int32 = 7
)

// DataLocation values.
const (
	LocationDefault  int32 = 0
	LocationExternal int32 = 1
)

// Model is an ONNX ModelProto.
type Model struct {
	IRVersion       int64
	Opsets          []OpsetID
	ProducerName    string
	ProducerVersion string
	Domain          string
	ModelVersion    int64
	DocString       string
	Graph           *Graph
	Metadata        []Entry
}

// OpsetID is an OperatorSetIdProto.
type OpsetID struct {
	Domain  string
	Version int64
}

// Entry is a StringStringEntryProto.
type Entry struct{ Key, Value string }

// Graph is a GraphProto.
type Graph struct {
	Nodes        []*Node
	Name         string
	Initializers []*Tensor
	DocString    string
	Inputs       []ValueInfo
	Outputs      []ValueInfo
}

// Node is a NodeProto.
type Node struct {
	Inputs  []string
	Outputs []string
	Name    string
	OpType  string
	Attrs   []Attr
	Domain  string
}

// Attr is an AttributeProto of one of the types above.
type Attr struct {
	Name   string
	Type   int32
	F      float32
	I      int64
	S      []byte
	T      *Tensor
	Floats []float32
	Ints   []int64
}

// Tensor is a TensorProto. On decode, RawData is not kept: RawBytes holds its length.
type Tensor struct {
	Dims     []int64
	DataType int32
	Name     string
	RawData  []byte
	RawBytes int64
	// Int64Data and FloatData are the typed payload fields (kept on decode only for small
	// tensors: at most 4096 elements).
	Int64Data []int64
	FloatData []float32
	External  []Entry
	Location  int32
}

// Elements returns the number of elements the tensor's dims describe.
func (t *Tensor) Elements() int64 {
	n := int64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// ExternalValue returns the value of external_data key k ("location", "offset", "length").
func (t *Tensor) ExternalValue(k string) string {
	for _, e := range t.External {
		if e.Key == k {
			return e.Value
		}
	}
	return ""
}

// ValueInfo is a ValueInfoProto for a tensor type.
type ValueInfo struct {
	Name     string
	ElemType int32
	Shape    []Dim
	// HasShape is false when the value info has no shape at all (any rank).
	HasShape bool
}

// Dim is one dimension: a fixed value or a symbolic name.
type Dim struct {
	Value int64
	Param string
}

func (d Dim) String() string {
	if d.Param != "" {
		return d.Param
	}
	if d.Value == 0 {
		return "?"
	}
	return fmt.Sprint(d.Value)
}

// ---- encoding -----------------------------------------------------------------------------

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendInt(b []byte, num protowire.Number, v int64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

func appendMessage(b []byte, num protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

func appendPackedInts(b []byte, num protowire.Number, vs []int64) []byte {
	if len(vs) == 0 {
		return b
	}
	var p []byte
	for _, v := range vs {
		p = protowire.AppendVarint(p, uint64(v))
	}
	return appendMessage(b, num, p)
}

func appendPackedFloats(b []byte, num protowire.Number, vs []float32) []byte {
	if len(vs) == 0 {
		return b
	}
	var p []byte
	for _, v := range vs {
		p = protowire.AppendFixed32(p, math.Float32bits(v))
	}
	return appendMessage(b, num, p)
}

// Marshal encodes m deterministically.
func (m *Model) Marshal() []byte {
	var b []byte
	b = appendInt(b, 1, m.IRVersion)
	b = appendString(b, 2, m.ProducerName)
	b = appendString(b, 3, m.ProducerVersion)
	b = appendString(b, 4, m.Domain)
	b = appendInt(b, 5, m.ModelVersion)
	b = appendString(b, 6, m.DocString)
	if m.Graph != nil {
		b = appendMessage(b, 7, m.Graph.marshal())
	}
	for _, o := range m.Opsets {
		var p []byte
		p = appendString(p, 1, o.Domain)
		p = appendInt(p, 2, o.Version)
		b = appendMessage(b, 8, p)
	}
	for _, e := range m.Metadata {
		b = appendMessage(b, 14, e.marshal())
	}
	return b
}

func (e Entry) marshal() []byte {
	var p []byte
	p = appendString(p, 1, e.Key)
	// An empty value is still written so the entry is complete.
	p = protowire.AppendTag(p, 2, protowire.BytesType)
	return protowire.AppendString(p, e.Value)
}

func (g *Graph) marshal() []byte {
	var b []byte
	for _, n := range g.Nodes {
		b = appendMessage(b, 1, n.marshal())
	}
	b = appendString(b, 2, g.Name)
	for _, t := range g.Initializers {
		b = appendMessage(b, 5, t.Marshal())
	}
	b = appendString(b, 10, g.DocString)
	for _, v := range g.Inputs {
		b = appendMessage(b, 11, v.marshal())
	}
	for _, v := range g.Outputs {
		b = appendMessage(b, 12, v.marshal())
	}
	return b
}

func (n *Node) marshal() []byte {
	var b []byte
	for _, s := range n.Inputs {
		// Empty input names are meaningful (an omitted optional input), so always write them.
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	for _, s := range n.Outputs {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	b = appendString(b, 3, n.Name)
	b = appendString(b, 4, n.OpType)
	for _, a := range n.Attrs {
		b = appendMessage(b, 5, a.marshal())
	}
	b = appendString(b, 7, n.Domain)
	return b
}

func (a *Attr) marshal() []byte {
	var b []byte
	b = appendString(b, 1, a.Name)
	switch a.Type {
	case AttrFloat:
		b = protowire.AppendTag(b, 2, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(a.F))
	case AttrInt:
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(a.I))
	case AttrString:
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendBytes(b, a.S)
	case AttrTensor:
		b = appendMessage(b, 5, a.T.Marshal())
	case AttrFloats:
		b = appendPackedFloats(b, 7, a.Floats)
	case AttrInts:
		b = appendPackedInts(b, 8, a.Ints)
	}
	b = protowire.AppendTag(b, 20, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(a.Type))
}

// Marshal encodes a TensorProto.
func (t *Tensor) Marshal() []byte {
	var b []byte
	b = appendPackedInts(b, 1, t.Dims)
	b = appendInt(b, 2, int64(t.DataType))
	b = appendPackedFloats(b, 4, t.FloatData)
	b = appendPackedInts(b, 7, t.Int64Data)
	b = appendString(b, 8, t.Name)
	if len(t.RawData) > 0 {
		b = protowire.AppendTag(b, 9, protowire.BytesType)
		b = protowire.AppendBytes(b, t.RawData)
	}
	for _, e := range t.External {
		b = appendMessage(b, 13, e.marshal())
	}
	b = appendInt(b, 14, int64(t.Location))
	return b
}

func (v *ValueInfo) marshal() []byte {
	var shape []byte
	for _, d := range v.Shape {
		var p []byte
		if d.Param != "" {
			p = appendString(p, 2, d.Param)
		} else {
			p = protowire.AppendTag(p, 1, protowire.VarintType)
			p = protowire.AppendVarint(p, uint64(d.Value))
		}
		shape = appendMessage(shape, 1, p)
	}
	var tt []byte
	tt = appendInt(tt, 1, int64(v.ElemType))
	tt = appendMessage(tt, 2, shape)
	var tp []byte
	tp = appendMessage(tp, 1, tt)
	var b []byte
	b = appendString(b, 1, v.Name)
	b = appendMessage(b, 2, tp)
	return b
}

// ---- decoding -----------------------------------------------------------------------------

// ErrCorrupt is wrapped by every decoding error.
var ErrCorrupt = errors.New("not a valid ONNX protobuf")

type fieldFunc func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error

// walk calls f for every field of the message in b. For bytes fields v is the payload; for
// varint and fixed fields x is the value.
func walk(b []byte, f fieldFunc) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: bad field tag: %v", ErrCorrupt, protowire.ParseError(n))
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var y uint32
			y, n = protowire.ConsumeFixed32(b)
			x = uint64(y)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("%w: field %d: %v", ErrCorrupt, num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := f(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

// Decode parses a ModelProto. Tensor payloads are not copied (only their sizes are kept), and
// nodes are not decoded beyond their op types. A model without a graph is an error.
func Decode(b []byte) (*Model, error) {
	m := &Model{}
	var sawGraph bool
	err := walk(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch num {
		case 1:
			m.IRVersion = int64(x)
		case 2:
			m.ProducerName = string(v)
		case 3:
			m.ProducerVersion = string(v)
		case 7:
			if typ != protowire.BytesType {
				return fmt.Errorf("%w: graph field has wire type %d", ErrCorrupt, typ)
			}
			g, err := decodeGraph(v)
			if err != nil {
				return fmt.Errorf("graph: %w", err)
			}
			m.Graph, sawGraph = g, true
		case 8:
			var o OpsetID
			if err := walk(v, func(num protowire.Number, _ protowire.Type, v []byte, x uint64) error {
				switch num {
				case 1:
					o.Domain = string(v)
				case 2:
					o.Version = int64(x)
				}
				return nil
			}); err != nil {
				return err
			}
			m.Opsets = append(m.Opsets, o)
		case 14:
			e, err := decodeEntry(v)
			if err != nil {
				return err
			}
			m.Metadata = append(m.Metadata, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !sawGraph || m.IRVersion == 0 {
		return nil, fmt.Errorf("%w: no ir_version or graph", ErrCorrupt)
	}
	return m, nil
}

func decodeEntry(b []byte) (Entry, error) {
	var e Entry
	err := walk(b, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
		switch num {
		case 1:
			e.Key = string(v)
		case 2:
			e.Value = string(v)
		}
		return nil
	})
	return e, err
}

func decodeGraph(b []byte) (*Graph, error) {
	g := &Graph{}
	err := walk(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1:
			n := &Node{}
			if err := walk(v, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
				switch num {
				case 1:
					n.Inputs = append(n.Inputs, string(v))
				case 2:
					n.Outputs = append(n.Outputs, string(v))
				case 3:
					n.Name = string(v)
				case 4:
					n.OpType = string(v)
				case 5: // attribute: name, type and integer value (what readers need)
					a := Attr{}
					if err := walk(v, func(num protowire.Number, _ protowire.Type, v []byte, u uint64) error {
						switch num {
						case 1:
							a.Name = string(v)
						case 3:
							a.I = int64(u)
						case 20:
							a.Type = int32(u)
						}
						return nil
					}); err != nil {
						return fmt.Errorf("attribute: %w", err)
					}
					n.Attrs = append(n.Attrs, a)
				case 7:
					n.Domain = string(v)
				}
				return nil
			}); err != nil {
				return fmt.Errorf("node: %w", err)
			}
			g.Nodes = append(g.Nodes, n)
		case 2:
			g.Name = string(v)
		case 5:
			t, err := decodeTensor(v)
			if err != nil {
				return fmt.Errorf("initializer: %w", err)
			}
			g.Initializers = append(g.Initializers, t)
		case 11, 12:
			vi, err := decodeValueInfo(v)
			if err != nil {
				return fmt.Errorf("value info: %w", err)
			}
			if num == 11 {
				g.Inputs = append(g.Inputs, vi)
			} else {
				g.Outputs = append(g.Outputs, vi)
			}
		}
		return nil
	})
	return g, err
}

func decodeTensor(b []byte) (*Tensor, error) {
	t := &Tensor{}
	err := walk(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch num {
		case 1:
			ds, err := unpackInts(typ, v, x)
			if err != nil {
				return err
			}
			t.Dims = append(t.Dims, ds...)
		case 2:
			t.DataType = int32(x)
		case 7:
			ds, err := unpackInts(typ, v, x)
			if err != nil {
				return err
			}
			if len(t.Int64Data)+len(ds) <= 4096 {
				t.Int64Data = append(t.Int64Data, ds...)
			}
		case 8:
			t.Name = string(v)
		case 9:
			t.RawBytes = int64(len(v))
		case 13:
			e, err := decodeEntry(v)
			if err != nil {
				return err
			}
			t.External = append(t.External, e)
		case 14:
			t.Location = int32(x)
		}
		return nil
	})
	return t, err
}

func unpackInts(typ protowire.Type, v []byte, x uint64) ([]int64, error) {
	if typ == protowire.VarintType {
		return []int64{int64(x)}, nil
	}
	var out []int64
	for len(v) > 0 {
		y, n := protowire.ConsumeVarint(v)
		if n < 0 {
			return nil, fmt.Errorf("%w: packed ints: %v", ErrCorrupt, protowire.ParseError(n))
		}
		out = append(out, int64(y))
		v = v[n:]
	}
	return out, nil
}

func decodeValueInfo(b []byte) (ValueInfo, error) {
	var vi ValueInfo
	err := walk(b, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
		switch num {
		case 1:
			vi.Name = string(v)
		case 2: // TypeProto
			return walk(v, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
				if num != 1 { // only tensor types
					return nil
				}
				return walk(v, func(num protowire.Number, _ protowire.Type, v []byte, x uint64) error {
					switch num {
					case 1:
						vi.ElemType = int32(x)
					case 2:
						vi.HasShape = true
						return walk(v, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) error {
							if num != 1 {
								return nil
							}
							var d Dim
							if err := walk(v, func(num protowire.Number, _ protowire.Type, v []byte, x uint64) error {
								switch num {
								case 1:
									d.Value = int64(x)
								case 2:
									d.Param = string(v)
								}
								return nil
							}); err != nil {
								return err
							}
							vi.Shape = append(vi.Shape, d)
							return nil
						})
					}
					return nil
				})
			})
		}
		return nil
	})
	return vi, err
}
