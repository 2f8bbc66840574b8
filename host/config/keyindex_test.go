package config

import (
	"context"
	"io/fs"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/lemctl/lemctl/sdk"
)

func TestIndexKeyLines(t *testing.T) {
	doc := `# comment [not.a.table]
name = "x" # trailing comment
text = """
multi = 1
[not.a.table]
"""
lit = '''
also = "not a key"'''
[model]
ref = "a"
"quoted.key" = 1
'single' = 2
dotted.deeper.key = 3
inline = { a = 1, b = { c = [1, 2,
  3], d = "}" }, e = 5 }
arr = [
  "x,y",
  { f = 1 },
]
when = 1979-05-27 07:32:00Z
[[servers]]
host = "a"
[[servers]]
host = "b"
[ "spaced" . table ]
k = 1
`
	lines := indexKeyLines([]byte(doc))
	for _, tc := range []struct {
		path []string
		line int
	}{
		{p("name"), 2},
		{p("text"), 3},
		{p("lit"), 7},
		{p("model"), 9},
		{p("model", "ref"), 10},
		{p("model", "quoted.key"), 11},
		{p("model", "single"), 12},
		{p("model", "dotted"), 13},
		{p("model", "dotted", "deeper", "key"), 13},
		{p("model", "inline", "a"), 14},
		{p("model", "inline", "b", "c"), 14},
		{p("model", "inline", "b", "d"), 15},
		{p("model", "inline", "e"), 15},
		{p("model", "arr"), 16},
		{p("model", "when"), 20},
		{p("servers"), 21},
		{p("servers", "host"), 22},
		{p("spaced", "table"), 25},
		{p("spaced", "table", "k"), 26},
	} {
		if got := lines[pathKey(tc.path...)]; got != tc.line {
			t.Errorf("%s: line %d, want %d", displayPath(tc.path...), got, tc.line)
		}
	}
	for _, notKey := range [][]string{p("multi"), p("not"), p("also"), p("model", "arr", "f")} {
		if n, ok := lines[pathKey(notKey...)]; ok {
			t.Errorf("%s indexed at line %d; it is not a key", displayPath(notKey...), n)
		}
	}
}

func TestDisplayPath(t *testing.T) {
	if got := displayPath("energy", "my meter", "x"); got != `energy."my meter".x` {
		t.Errorf("got %s", got)
	}
}

func TestClosest(t *testing.T) {
	names := []string{"batch_size", "max_new_tokens", "prompts"}
	for key, want := range map[string]string{"batchsize": "batch_size", "promts": "prompts", "max_new_tokns": "max_new_tokens", "zzz": "", "batch_size": ""} {
		if got := sdk.Suggest(key, names); got != want {
			t.Errorf("sdk.Suggest(%q) = %q, want %q", key, got, want)
		}
	}
}

// FuzzLoad feeds arbitrary documents and --set values to Load: it may reject them, never panic,
// and every error it returns must name the file or the flag.
func FuzzLoad(f *testing.F) {
	f.Add([]byte("[model]\nref = \"x\"\n"), "workload.batch_size=4")
	f.Add([]byte("a = { b = [1, {c = 2}], d = '''\n'''}\n[[x]]\ny.z = 1"), "launch.devices=[0]")
	f.Add([]byte("[workload]\ndecoding = { greedy = false,\n top_p = 0 }\n\"q\\\"k\" = 1"), "energy.\"m\".x=\"")
	f.Add([]byte("x = \"\"\"\n\\\"\"\"\"\"\n[model]\nref='r'\n[energy.nvml]\n"), "=")
	f.Fuzz(func(t *testing.T, doc []byte, set string) {
		lines := indexKeyLines(doc)
		// Every key the TOML parser saw outside an array must have a line in the index.
		var m map[string]any
		if md, err := toml.Decode(string(doc), &m); err == nil {
		keys:
			for _, k := range md.Keys() {
				for i := 1; i < len(k); i++ {
					if typ := md.Type(k[:i]...); typ == "Array" || typ == "ArrayHash" {
						continue keys
					}
				}
				if _, ok := lines[pathKey(k...)]; !ok {
					t.Fatalf("key %s (%s) has no line in\n%s", displayPath(k...), md.Type(k...), doc)
				}
			}
		}
		cfg, err := Load(context.Background(), "f.toml", doc, Options{Overrides: Overrides{Set: []string{set}}, FS: emptyFS{}})
		if err != nil {
			for _, e := range err.(Errors) {
				if e.File != "f.toml" && !strings.HasPrefix(e.Source, "flag") {
					t.Fatalf("error without a file or flag: %#v", e)
				}
			}
			return
		}
		if _, err := Hash(cfg); err != nil {
			t.Fatalf("valid config does not hash: %v", err)
		}
	})
}

type emptyFS struct{}

func (emptyFS) Open(name string) (fs.File, error) {
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}
