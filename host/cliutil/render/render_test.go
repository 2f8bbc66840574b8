package render_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/cliutil/render"
)

func TestJSON(t *testing.T) {
	var b bytes.Buffer
	if err := render.JSON(&b, map[string]any{"a_b": "<x>", "n": []int{1}}); err != nil {
		t.Fatal(err)
	}
	want := "{\n  \"a_b\": \"<x>\",\n  \"n\": [\n    1\n  ]\n}\n"
	if b.String() != want {
		t.Fatalf("got %q, want %q", b.String(), want)
	}
}

func TestTable(t *testing.T) {
	var b bytes.Buffer
	if err := render.Table(&b, []string{"NAME", "KINDS"}, [][]string{{"onnx", "engine,loader"}, {"fsstore-long", "repository"}}); err != nil {
		t.Fatal(err)
	}
	want := "NAME          KINDS\nonnx          engine,loader\nfsstore-long  repository\n"
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	if err := render.Table(&b, nil, [][]string{{"k", "v"}}); err != nil || b.String() != "k  v\n" {
		t.Fatalf("no header: %q, %v", b.String(), err)
	}
}

func TestOutputFlag(t *testing.T) {
	parse := func(args ...string) (string, error) {
		var out string
		cmd := &cobra.Command{Use: "x", RunE: func(*cobra.Command, []string) error { return nil }}
		render.OutputVar(cmd, &out, render.FormatTOML, render.FormatJSON).Alias(cmd, "format")
		cmd.SetArgs(args)
		cmd.SilenceErrors, cmd.SilenceUsage = true, true
		cmd.SetOut(&bytes.Buffer{})
		return out, cmd.Execute()
	}
	if out, err := parse(); err != nil || out != render.FormatTOML {
		t.Fatalf("default: %q, %v; want the first valid value", out, err)
	}
	if out, err := parse("--format", "json"); err != nil || out != render.FormatJSON {
		t.Fatalf("--format json: %q, %v", out, err)
	}
	_, err := parse("-o", "yaml")
	if cliutil.CodeOf(err) != cliutil.ExitUsage || !strings.Contains(err.Error(), "--output") || !strings.Contains(err.Error(), "toml, json") {
		t.Fatalf("-o yaml: exit %d, %v; want a usage error naming --output and the valid values", cliutil.CodeOf(err), err)
	}
	if err := render.CheckOutput("csv", render.FormatTable, render.FormatJSON); cliutil.CodeOf(err) != cliutil.ExitUsage {
		t.Fatalf("CheckOutput csv: %v", err)
	}
}
