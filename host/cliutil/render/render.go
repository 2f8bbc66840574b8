// Package render is how every lemctl command prints data: JSON (render.JSON), aligned tables
// (render.Table, and render.NewTabWriter for key/value reports) and the one -o/--output flag
// (render.OutputVar) that chooses between them. Data goes to the writer it is given, which is a
// command's stdout; render must never print logs, decide exit codes or read any state.
package render

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/echo"
)

// Output formats.
const (
	FormatTable = "table"
	FormatJSON  = "json"
	FormatTOML  = "toml"
)

// JSON writes v as indented JSON (two spaces, no HTML escaping) followed by a newline.
func JSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// NewTabWriter returns the tabwriter every lemctl table uses: columns separated by tabs in the
// input, aligned with two spaces of padding. The caller flushes it.
func NewTabWriter(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// Table writes header (none when nil) and rows as aligned columns. Rows may have different
// lengths; a cell is written as is.
func Table(w io.Writer, header []string, rows [][]string) error {
	tw := NewTabWriter(w)
	if header != nil {
		fmt.Fprintln(tw, strings.Join(header, "\t"))
	}
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// OutputVar adds the one output flag every command that prints data takes, -o/--output, bound
// to p. Its valid values are valid (table and json when none are given); the first is the
// default. A value outside them fails when the flag is parsed: a usage error (exit 2) naming the
// flag and the valid values.
func OutputVar(cmd *cobra.Command, p *string, valid ...string) *OutputFlag {
	if len(valid) == 0 {
		valid = []string{FormatTable, FormatJSON}
	}
	*p = valid[0]
	o := &OutputFlag{p: p, valid: valid}
	cmd.Flags().VarP(o, "output", "o", "output format: "+strings.Join(valid, ", "))
	cmd.SetFlagErrorFunc(cliutil.FlagError) // as the root does, so the command is exit 2 on its own too
	return o
}

// OutputFlag is the value of an -o/--output flag.
type OutputFlag struct {
	p     *string
	valid []string
}

// Alias adds --name as another name of the same flag (a name kept from an older lemctl).
func (o *OutputFlag) Alias(cmd *cobra.Command, name string) {
	cmd.Flags().Var(o, name, "same as --output")
}

func (o *OutputFlag) String() string { return *o.p }

// Set accepts one of the valid values.
func (o *OutputFlag) Set(v string) error {
	if !slices.Contains(o.valid, v) {
		return fmt.Errorf("valid values are %s", strings.Join(o.valid, ", "))
	}
	*o.p = v
	return nil
}

// Type names the flag's value in the help.
func (o *OutputFlag) Type() string { return strings.Join(o.valid, "|") }

// CheckOutput returns a usage error unless format is one of valid (for a run function called
// without cobra, whose options did not go through OutputVar).
func CheckOutput(format string, valid ...string) error {
	if slices.Contains(valid, format) {
		return nil
	}
	return cliutil.Usagef("--output %s: valid values are %q", echo.Quote(format), valid)
}
