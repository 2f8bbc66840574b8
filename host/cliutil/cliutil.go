// Package cliutil holds what every lemctl command shares: the I/O streams, the logger, exit
// codes and output formats. Results go to Out, logs and progress to Err.
package cliutil

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/lemctl/lemctl/host/echo"
)

// Exit codes (docs/architecture.md): 0 ok; 1 the run failed or is partial; 2 bad usage or config;
// 130 interrupted. `lemctl measure` passes its command's code through instead.
const (
	ExitOK          = 0
	ExitFailed      = 1
	ExitUsage       = 2
	ExitInterrupted = 130
)

// Env is what a command gets from the root: streams, logger and global flags.
type Env struct {
	In     io.Reader
	Out    io.Writer
	Err    io.Writer
	Logger hclog.Logger
	// PluginDirs are the --plugin-dir flags, in order.
	PluginDirs []string
	// ResultsDir is --results-dir.
	ResultsDir string
	// Executable is the path of the running lemctl binary (for <dir of lemctl>/plugins).
	Executable string
}

// ExitError carries an exit code up to the root, where it is mapped in one place.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Exit wraps err with an exit code.
func Exit(code int, err error) error { return &ExitError{Code: code, Err: err} }

// Usage wraps err as a bad-usage or bad-config error (exit 2).
func Usage(err error) error { return &ExitError{Code: ExitUsage, Err: err} }

// Usagef formats a bad-usage error (exit 2).
func Usagef(format string, args ...any) error { return Usage(fmt.Errorf(format, args...)) }

// Failed wraps err as a failed-run error (exit 1).
func Failed(err error) error { return &ExitError{Code: ExitFailed, Err: err} }

// CodeOf returns the exit code err asks for: 0 for nil, the ExitError's code, else 1.
func CodeOf(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return ExitFailed
}

// Output formats.
const (
	OutputTable = "table"
	OutputJSON  = "json"
	OutputTOML  = "toml"
)

// OutputVar adds the one output flag every command that prints data takes, -o/--output, bound
// to p. Its valid values are valid (table and json when none are given); the first is the
// default. A value outside them fails when the flag is parsed: a usage error (exit 2) naming the
// flag and the valid values.
func OutputVar(cmd *cobra.Command, p *string, valid ...string) *OutputFlag {
	if len(valid) == 0 {
		valid = []string{OutputTable, OutputJSON}
	}
	*p = valid[0]
	o := &OutputFlag{p: p, valid: valid}
	cmd.Flags().VarP(o, "output", "o", "output format: "+strings.Join(valid, ", "))
	cmd.SetFlagErrorFunc(FlagError) // as the root does, so the command is exit 2 on its own too
	return o
}

// FlagError makes a flag that cannot be parsed a usage error (exit 2); the root sets it for
// every command.
func FlagError(_ *cobra.Command, err error) error { return Usage(err) }

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

// CheckOutput returns a usage error unless format is one of valid.
func CheckOutput(format string, valid ...string) error {
	for _, v := range valid {
		if format == v {
			return nil
		}
	}
	return Usagef("--output %s: valid values are %q", echo.Quote(format), valid)
}

// WriteJSON writes v as indented JSON followed by a newline.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
