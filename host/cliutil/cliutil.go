// Package cliutil holds what every lemctl command shares: the Factory (I/O streams, logger,
// global flags and the lazily made plugin catalog and results repository) and the exit codes.
// Results go to Out, logs and progress to Err. Output formats are host/cliutil/render's.
// It must never hold package state: everything a command needs comes from its Factory.
package cliutil

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lemctl/lemctl/host/config"
)

// Exit codes (docs/architecture.md): 0 ok; 1 the run failed or is partial; 2 bad usage or config;
// 130 interrupted. `lemctl measure` passes its command's code through instead.
const (
	ExitOK          = 0
	ExitFailed      = 1
	ExitUsage       = 2
	ExitInterrupted = 130
)

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

// ConfigUsage is a bad-config error (exit 2) from loading an experiment file: config.Errors are
// listed one per line under their count, anything else as it is.
func ConfigUsage(err error) error {
	var errs config.Errors
	if errors.As(err, &errs) {
		lines := make([]string, 0, len(errs))
		for _, e := range errs {
			lines = append(lines, e.Error())
		}
		return Usage(fmt.Errorf("%d configuration error(s):\n%s", len(errs), strings.Join(lines, "\n")))
	}
	return Usage(err)
}

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

// FlagError makes a flag that cannot be parsed a usage error (exit 2); the root sets it for
// every command.
func FlagError(_ *cobra.Command, err error) error { return Usage(err) }
