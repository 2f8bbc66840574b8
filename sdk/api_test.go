package sdk_test

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// The boundary between the author's sdk and the host's: what a plugin author imports shows no
// type of the transport. The host's side (sdk/hostclient) and the shared plumbing
// (sdk/internal/wire) may use them freely.

// authorPackages are the packages a plugin author imports.
var authorPackages = []string{
	"github.com/lemctl/lemctl/sdk",
	"github.com/lemctl/lemctl/sdk/units",
	"github.com/lemctl/lemctl/sdk/clock",
	"github.com/lemctl/lemctl/sdk/counter",
	"github.com/lemctl/lemctl/sdk/sampler",
	"github.com/lemctl/lemctl/sdk/plugintest",
}

// transportPrefixes are the import paths no author-facing identifier may mention.
var transportPrefixes = []string{
	"github.com/hashicorp/go-plugin",
	"google.golang.org/grpc",
	"google.golang.org/protobuf",
	"github.com/golang/protobuf",
	"github.com/lemctl/lemctl/sdk/proto/",
	"github.com/lemctl/lemctl/sdk/internal/",
}

const sdkModule = "github.com/lemctl/lemctl/sdk"

func TestAuthorAPIShowsNoTransport(t *testing.T) {
	imp := exportImporter(t, authorPackages...)
	for _, path := range authorPackages {
		pkg, err := imp.Import(path)
		if err != nil {
			t.Fatalf("import %s: %v", path, err)
		}
		if leaks := transportLeaks(pkg); len(leaks) > 0 {
			t.Errorf("package %s shows transport types in its exported API (move them to sdk/hostclient or sdk/internal/wire):\n  %s",
				path, strings.Join(leaks, "\n  "))
		}
	}
}

// TestTransportLeaksFindsEveryKind proves the check on a package that leaks in every way it
// can: a variable, a function result, an exported field, a method, an interface method, an
// alias; and shows that unexported fields and unexported types do not count.
func TestTransportLeaksFindsEveryKind(t *testing.T) {
	imp := exportImporter(t, "github.com/hashicorp/go-plugin", "google.golang.org/grpc/codes", sdkModule+"/proto/lem/loader/v1")
	const src = `package leaky

import (
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	loaderv1 "github.com/lemctl/lemctl/sdk/proto/lem/loader/v1"
)

var Handshake = plugin.HandshakeConfig{}

func Set() plugin.PluginSet { return nil }

type Err struct{ Code codes.Code }

type Wrapper struct{ inner Err }

func (Wrapper) Proto() *loaderv1.Artifact { return nil }

type Client interface{ Dispense() plugin.ClientProtocol }

type Alias = codes.Code

type Clean struct {
	Name string
	code codes.Code
}

type config struct{ set plugin.PluginSet }

type Option func(*config)
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "leaky.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := (&types.Config{Importer: imp}).Check("example.com/leaky", fset, []*ast.File{f}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range transportLeaks(pkg) {
		got = append(got, strings.TrimSuffix(strings.Fields(l)[0], ":"))
	}
	want := []string{"Alias", "Client", "Err", "Handshake", "Set", "Wrapper"}
	if !slices.Equal(got, want) {
		t.Errorf("leaks found in %v, want %v (all: %v)", got, want, transportLeaks(pkg))
	}
}

// transportLeaks lists the exported identifiers of pkg whose API mentions a transport package,
// each as "Name: the type that leaks". It follows the exported fields and methods of every type
// of module sdk that the API reaches, so a leak one type away is found too.
func transportLeaks(pkg *types.Package) []string {
	var leaks []string
	scope := pkg.Scope()
	for _, name := range scope.Names() {
		obj := scope.Lookup(name)
		if !obj.Exported() {
			continue
		}
		w := &leakWalker{seen: map[types.Type]bool{}}
		if alias, ok := obj.Type().(*types.Alias); ok && obj.(*types.TypeName).IsAlias() {
			w.walk(alias)
		} else if named, ok := obj.Type().(*types.Named); ok && obj.Pkg() == named.Obj().Pkg() {
			w.members(named)
		} else {
			w.walk(obj.Type())
		}
		if w.leak != "" {
			leaks = append(leaks, name+": "+w.leak)
		}
	}
	return leaks
}

type leakWalker struct {
	seen map[types.Type]bool
	leak string
}

func isTransport(path string) bool {
	for _, p := range transportPrefixes {
		if strings.HasPrefix(path, p) || path == strings.TrimSuffix(p, "/") {
			return true
		}
	}
	return false
}

func (w *leakWalker) walk(t types.Type) {
	if w.leak != "" || t == nil || w.seen[t] {
		return
	}
	w.seen[t] = true
	switch t := t.(type) {
	case *types.Alias:
		if o := t.Obj(); o.Pkg() != nil && isTransport(o.Pkg().Path()) {
			w.leak = t.String()
			return
		}
		w.walk(types.Unalias(t))
	case *types.Named:
		if o := t.Obj(); o.Pkg() != nil {
			if isTransport(o.Pkg().Path()) {
				w.leak = t.String()
				return
			}
			if strings.HasPrefix(o.Pkg().Path(), sdkModule) {
				w.members(t)
			}
		}
		for i := 0; i < t.TypeArgs().Len(); i++ {
			w.walk(t.TypeArgs().At(i))
		}
	case *types.Pointer:
		w.walk(t.Elem())
	case *types.Slice:
		w.walk(t.Elem())
	case *types.Array:
		w.walk(t.Elem())
	case *types.Chan:
		w.walk(t.Elem())
	case *types.Map:
		w.walk(t.Key())
		w.walk(t.Elem())
	case *types.Signature:
		for i := 0; i < t.Params().Len(); i++ {
			w.walk(t.Params().At(i).Type())
		}
		for i := 0; i < t.Results().Len(); i++ {
			w.walk(t.Results().At(i).Type())
		}
	case *types.Struct:
		for i := 0; i < t.NumFields(); i++ {
			if f := t.Field(i); f.Exported() {
				w.walk(f.Type())
			}
		}
	case *types.Interface:
		for i := 0; i < t.NumMethods(); i++ {
			if m := t.Method(i); m.Exported() {
				w.walk(m.Type())
			}
		}
	case *types.TypeParam:
		w.walk(t.Constraint())
	}
}

// members walks what a named type of the API shows: its underlying type's exported parts and
// its exported methods.
func (w *leakWalker) members(t *types.Named) {
	w.seen[t] = true
	w.walk(t.Underlying())
	for i := 0; i < t.NumMethods(); i++ {
		if m := t.Method(i); m.Exported() {
			w.walk(m.Type())
		}
	}
}

// exportImporter returns an importer that reads the compiler's export data of pkgs and their
// dependencies, as `go list -export` builds it.
func exportImporter(t *testing.T, pkgs ...string) types.Importer {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goBin, append([]string{"list", "-export", "-deps", "-json=ImportPath,Export"}, pkgs...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -export: %v\n%s", err, stderr.String())
	}
	exports := map[string]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct{ ImportPath, Export string }
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		exports[p.ImportPath] = p.Export
	}
	return importer.ForCompiler(token.NewFileSet(), "gc", func(path string) (io.ReadCloser, error) {
		f, ok := exports[path]
		if !ok || f == "" {
			return nil, os.ErrNotExist
		}
		return os.Open(f)
	})
}
