package discovery

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/lemctl/lemctl/sdk/hostclient"
)

// probe starts the plugin at path, asks its Info, checks that it serves every kind it claims,
// and kills it. The plugin's stderr is captured for the error message and logged at debug level
// only: discovery runs every plugin, and their start-up chatter is not the user's business
// unless something fails.
//
// It sets c.Info and returns why c cannot be used: the start failed, its Info fails checkInfo, or
// a claimed kind is not served or its probe call does not answer within the start timeout.
func (cat *Catalog) probe(ctx context.Context, c *Plugin, checksum []byte) error {
	tail := &tailBuffer{max: 5}
	log := newPluginLogger(cat.log, c.Name, tail, true)
	// Start (bounded by the start timeout) plus Info and the probe calls.
	ctx, cancel := context.WithTimeout(ctx, 2*cat.startTimeout+5*time.Second)
	defer cancel()
	cl, err := hostclient.Open(ctx, c.Path, cat.openOptions(log, checksum)...)
	if err != nil {
		return explainStart(err, cat.startTimeout, tail)
	}
	defer cl.Close()
	c.Info = cl.Info()
	if err := checkInfo(c); err != nil {
		return err
	}
	// Each probe call gets the start timeout: a plugin that does not answer is unusable, with the
	// call and the deadline in the reason, and (like every failure) is not cached.
	st := cat.startTimeout
	cl.SetCallTimeouts(hostclient.CallTimeouts{Control: st, Repository: st, Load: st, Generate: st})
	return cl.Probe(ctx)
}

func (cat *Catalog) openOptions(log hclog.Logger, checksum []byte) []hostclient.OpenOption {
	// The parent's plugins get a process group of their own: a signal to lemctl's group (Ctrl-C,
	// `timeout`, Slurm) must leave the repository alive until lemctl has saved the final
	// manifest (docs/reliability.md, "Signals and abandoned runs"); the parent-death signal and
	// the plugin's own watch still end them with lemctl.
	opts := []hostclient.OpenOption{hostclient.WithClientLogger(log), hostclient.WithStartTimeout(cat.startTimeout)}
	if len(cat.env) > 0 {
		opts = append(opts, hostclient.WithEnv(cat.env...))
	}
	if checksum != nil {
		opts = append(opts, hostclient.WithChecksum(checksum))
	}
	return opts
}

var incompatibleAPI = regexp.MustCompile(`incompatible API version with plugin\. Plugin version: (\d+)`)

// explainStart turns go-plugin's start errors into the cause a user can act on.
func explainStart(err error, timeout time.Duration, tail *tailBuffer) error {
	msg := err.Error()
	stderr := ""
	if t := tail.crash(5); t != "" {
		stderr = "; its stderr ended with: " + t
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return fmt.Errorf("did not answer in time: %w%s", err, stderr)
	case strings.Contains(msg, "timeout while waiting for plugin to start"):
		return fmt.Errorf("never completed the plugin handshake within the start timeout (%s); is it a lemctl plugin that calls sdk.Serve?%s", timeout, stderr)
	case strings.Contains(msg, "Failed to read any lines from plugin's stdout"),
		strings.Contains(msg, "plugin exited before we could connect"):
		return fmt.Errorf("exited before completing the plugin handshake (crashed at start?)%s", stderr)
	case strings.Contains(msg, "Unrecognized remote plugin message"):
		line := strings.TrimSpace(strings.SplitN(strings.TrimPrefix(msg[strings.Index(msg, "Unrecognized remote plugin message"):], "Unrecognized remote plugin message:"), "\n", 2)[0])
		return fmt.Errorf("wrote to stdout before serving (first line %q); a plugin must write nothing to stdout but the handshake line (log to stderr)", line)
	case incompatibleAPI.MatchString(msg):
		v, _ := strconv.Atoi(incompatibleAPI.FindStringSubmatch(msg)[1])
		return noCommonAPI([]int{v})
	case strings.Contains(msg, "checksums did not match"):
		return fmt.Errorf("%w: the binary changed while it was being started (go-plugin's checksum check failed); refused", ErrLockMismatch)
	case strings.Contains(msg, "exec format error"), strings.Contains(msg, "permission denied"), strings.Contains(msg, "fork/exec"):
		return fmt.Errorf("cannot be executed: %w", err)
	}
	return fmt.Errorf("failed to start: %w%s", err, stderr)
}

// tailBuffer keeps the last few lines a plugin wrote to stderr.
type tailBuffer struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func (t *tailBuffer) add(line string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
	if len(t.lines) > t.max {
		t.lines = t.lines[len(t.lines)-t.max:]
	}
}

func (t *tailBuffer) String() string {
	if t == nil {
		return ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, " | ")
}

// crash returns the lines from the last Go panic or fatal error on, at most n of them, or
// else the last n lines, joined like String.
func (t *tailBuffer) crash(n int) string {
	if t == nil {
		return ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	from := max(len(t.lines)-n, 0)
	for i := len(t.lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(t.lines[i], "panic: ") || strings.HasPrefix(t.lines[i], "fatal error: ") {
			from = i
			break
		}
	}
	var lines []string
	for _, l := range t.lines[from:] {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, " | ")
}

// pluginLogger is the logger handed to go-plugin for one plugin. go-plugin logs its own
// lifecycle through it and forwards the plugin's stderr through Named(<binary name>); that
// sub-logger is renamed to the plugin's name, and its lines are kept in a tail for error
// messages. With quiet set (discovery's probes) everything is demoted to debug.
type pluginLogger struct {
	hclog.Logger
	name   string
	tail   *tailBuffer
	quiet  bool
	stderr bool
}

func newPluginLogger(base hclog.Logger, name string, tail *tailBuffer, quiet bool) hclog.Logger {
	return &pluginLogger{Logger: base, name: name, tail: tail, quiet: quiet}
}

func (l *pluginLogger) wrap(inner hclog.Logger, stderr bool) hclog.Logger {
	return &pluginLogger{Logger: inner, name: l.name, tail: l.tail, quiet: l.quiet, stderr: stderr}
}

// Named renames go-plugin's per-binary sub-logger (lem-plugin-<name>) to the plugin's name.
func (l *pluginLogger) Named(n string) hclog.Logger {
	if !l.stderr && strings.HasPrefix(n, FilePrefix) {
		return l.wrap(l.Logger.Named(l.name), true)
	}
	return l.wrap(l.Logger.Named(n), l.stderr)
}

func (l *pluginLogger) ResetNamed(n string) hclog.Logger {
	return l.wrap(l.Logger.ResetNamed(n), l.stderr)
}

func (l *pluginLogger) With(args ...any) hclog.Logger {
	return l.wrap(l.Logger.With(args...), l.stderr)
}

// level decides the level a message is logged at.
func (l *pluginLogger) level(level hclog.Level, msg string) hclog.Level {
	if l.quiet && level > hclog.Debug {
		return hclog.Debug
	}
	// go-plugin's "plugin process exited" (info) follows every normal Close.
	if !l.stderr && level == hclog.Info && msg == "plugin process exited" {
		return hclog.Debug
	}
	return level
}

func (l *pluginLogger) Log(level hclog.Level, msg string, args ...any) {
	if l.stderr {
		l.tail.add(msg)
	}
	l.Logger.Log(l.level(level, msg), msg, args...)
}

// GetLevel is Trace for the stderr logger, so that go-plugin hands over every line (the tail
// keeps them all); the wrapped logger still filters what is printed.
func (l *pluginLogger) GetLevel() hclog.Level {
	if l.stderr {
		return hclog.Trace
	}
	return l.Logger.GetLevel()
}

func (l *pluginLogger) Trace(msg string, args ...any) { l.Log(hclog.Trace, msg, args...) }
func (l *pluginLogger) Debug(msg string, args ...any) { l.Log(hclog.Debug, msg, args...) }
func (l *pluginLogger) Info(msg string, args ...any)  { l.Log(hclog.Info, msg, args...) }
func (l *pluginLogger) Warn(msg string, args ...any)  { l.Log(hclog.Warn, msg, args...) }
func (l *pluginLogger) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }

// UnavailableError is the error for a plugin that is installed but cannot be used.
type UnavailableError struct {
	Name   string
	Path   string
	Reason string
	Err    error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("plugin %q at %s is unusable: %s", e.Name, e.Path, e.Reason)
}

func (e *UnavailableError) Unwrap() error { return e.Err }
