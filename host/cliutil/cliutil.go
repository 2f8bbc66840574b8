// Package cliutil holds what every lemctl command shares: the I/O streams, the logger, exit
// codes and output formats. Results go to Out, logs and progress to Err.
package cliutil

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/go-hclog"
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

// CheckOutput returns a usage error unless format is one of valid.
func CheckOutput(format string, valid ...string) error {
	for _, v := range valid {
		if format == v {
			return nil
		}
	}
	return Usagef("--output %q: valid values are %q", format, valid)
}

// WriteJSON writes v as indented JSON followed by a newline.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
