package discovery

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/lemctl/lemctl/host/config"
	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/hostclient"
)

// ConfigRejected is a plugin that refused its configuration table: Errors are its per-key
// complaints. It has the one rendering every command shows.
type ConfigRejected struct {
	Plugin string
	Kind   sdk.Kind
	Errors []sdk.ConfigError
}

func (e *ConfigRejected) Error() string {
	msgs := make([]string, len(e.Errors))
	for i, ce := range e.Errors {
		msgs[i] = ce.Error()
	}
	return fmt.Sprintf("plugin %s (%s) rejected its table: %s", e.Plugin, e.Kind, strings.Join(msgs, "; "))
}

// IsUsage reports whether err from OpenConfigured or Session.Open is the user's to fix (exit
// code 2): the plugin is not installed, not of the kind asked, unusable here, or rejected its
// table. Anything else (a plugin that failed to start or to answer) is a failure.
func IsUsage(err error) bool {
	var rej *ConfigRejected
	var un *UnavailableError
	return errors.As(err, &rej) || errors.As(err, &un) || errors.Is(err, config.ErrPluginNotInstalled)
}

// OpenConfigured is the one way to open a plugin: it finds the selected plugin called name
// serving kind, starts it (see Open), configures it with table (nil is an empty table) and
// returns the configured client, which the caller closes. A rejected table is a
// *ConfigRejected; nothing is left running on any error.
func (cat *Catalog) OpenConfigured(ctx context.Context, name string, kind sdk.Kind, table map[string]any) (*hostclient.Client, error) {
	c, err := cat.Open(ctx, name, kind)
	if err != nil {
		return nil, err
	}
	return configured(ctx, c, name, kind, table)
}

// PinnedOpener opens plugins for a worker, which has no Catalog: each by the path and sha256 the
// launch spec pinned. It keeps each plugin's stderr tail, so that Explain can name the cause when
// a plugin dies. The zero value opens with no logger and hostclient's default deadlines.
type PinnedOpener struct {
	// Log receives each plugin's stderr, under the plugin's name.
	Log hclog.Logger
	// Timeouts, when not nil, are the call deadlines of every plugin opened, Configure included.
	Timeouts *hostclient.CallTimeouts

	tails tails
}

// Open is OpenConfigured for a worker: it starts the binary at path (pinned to the hex sha256
// when not "", checked by go-plugin before it runs), checks that it answers as name serving kind
// and configures it with table. The caller closes the client.
func (o *PinnedOpener) Open(ctx context.Context, name, path, sha256 string, kind sdk.Kind, table map[string]any) (*hostclient.Client, error) {
	log := o.Log
	if log == nil {
		log = hclog.NewNullLogger()
	}
	tail := &tailBuffer{max: 20}
	opts := []hostclient.OpenOption{hostclient.WithClientLogger(newPluginLogger(log, name, tail, false))}
	if sha256 != "" {
		sum, err := hex.DecodeString(sha256)
		if err != nil {
			return nil, fmt.Errorf("plugin %s: bad pinned sha256 %q", name, sha256)
		}
		opts = append(opts, hostclient.WithChecksum(sum))
	}
	c, err := hostclient.Open(ctx, path, opts...)
	if err != nil {
		return nil, fmt.Errorf("start plugin %s (%s): %w", name, path, err)
	}
	if got := c.Info(); got.Name != name || !got.Serves(kind) {
		c.Close()
		return nil, fmt.Errorf("plugin %s (%s) answers as %q serving %v, not as a %s plugin; the binary changed since discovery", name, path, got.Name, got.Kinds, kind)
	}
	if o.Timeouts != nil {
		c.SetCallTimeouts(*o.Timeouts)
	}
	o.tails.add(c, tail)
	return configured(ctx, c, name, kind, table)
}

// Explain returns err with the cause when a plugin this opener started has died: the last lines
// it wrote to stderr, from its panic message on. Any other error is returned as it is.
func (o *PinnedOpener) Explain(err error) error { return o.tails.explainGone(err) }

// configured configures c with table and returns it, or closes it and returns the error (a
// *ConfigRejected for a rejected table).
func configured(ctx context.Context, c *hostclient.Client, name string, kind sdk.Kind, table map[string]any) (*hostclient.Client, error) {
	errs, err := configure(ctx, c, name, kind, table)
	if err == nil && len(errs) > 0 {
		err = &ConfigRejected{Plugin: name, Kind: kind, Errors: errs}
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func configure(ctx context.Context, c *hostclient.Client, name string, kind sdk.Kind, table map[string]any) ([]sdk.ConfigError, error) {
	if table == nil {
		table = map[string]any{}
	}
	errs, err := c.Configure(ctx, table)
	if err != nil {
		return nil, fmt.Errorf("configure plugin %s (%s, %s): %w", name, kind, c.Path(), err)
	}
	return errs, nil
}

// Session holds the plugin processes of one command (a run's parent): each plugin is started at
// most once, on first use, and configured once per distinct table, so checking the config,
// choosing the meters, the device inventory, tokenizing and the repository share one process per
// plugin. It implements config.PluginConfigurer. Safe for concurrent use: different plugins
// start in parallel. Close kills them all.
type Session struct {
	cat *Catalog

	mu       sync.Mutex
	plugins  map[string]*held
	closed   bool
	timeouts *hostclient.CallTimeouts // nil: hostclient's defaults
}

// SetCallTimeouts sets the call deadlines of the session's plugins: those already started (for
// their calls from now on) and those it starts later, Configure included
// (hostclient.DefaultCallTimeouts until then).
func (s *Session) SetCallTimeouts(t hostclient.CallTimeouts) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timeouts = &t
	for _, h := range s.plugins {
		h.mu.Lock()
		if h.c != nil {
			h.c.SetCallTimeouts(t)
		}
		h.mu.Unlock()
	}
}

type held struct {
	mu       sync.Mutex // serialises start and Configure
	started  bool
	c        *hostclient.Client
	err      error  // the start error, kept: a plugin that failed to start is not retried
	table    string // the table it was last configured with, as JSON ("" = never)
	rejected []sdk.ConfigError
}

// NewSession returns an empty Session over cat.
func (cat *Catalog) NewSession() *Session {
	return &Session{cat: cat, plugins: map[string]*held{}}
}

// ConfigurePlugin implements config.PluginConfigurer: it starts the plugin (or reuses its
// process), sends it table and returns the per-key errors; the process stays for later use.
func (s *Session) ConfigurePlugin(ctx context.Context, plugin string, kind sdk.Kind, table map[string]any) ([]sdk.ConfigError, error) {
	_, errs, err := s.use(ctx, plugin, kind, table)
	return errs, err
}

// Open returns the process of plugin name, started once, configured with table (nil is an
// empty table; the same table is sent only once). A rejected table is a *ConfigRejected. The
// Session owns the client: the caller must not close it.
func (s *Session) Open(ctx context.Context, name string, kind sdk.Kind, table map[string]any) (*hostclient.Client, error) {
	c, errs, err := s.use(ctx, name, kind, table)
	if err == nil && len(errs) > 0 {
		err = &ConfigRejected{Plugin: name, Kind: kind, Errors: errs}
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (s *Session) use(ctx context.Context, name string, kind sdk.Kind, table map[string]any) (*hostclient.Client, []sdk.ConfigError, error) {
	if _, err := s.cat.lookup(name, kind); err != nil {
		return nil, nil, err
	}
	if table == nil {
		table = map[string]any{}
	}
	key, err := json.Marshal(table)
	if err != nil {
		return nil, nil, fmt.Errorf("plugin %s (%s): encode its table: %w", name, kind, err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, nil, fmt.Errorf("open plugin %q: the plugin session is closed", name)
	}
	timeouts := s.timeouts
	h := s.plugins[name]
	if h == nil {
		h = &held{}
		s.plugins[name] = h
	}
	s.mu.Unlock()

	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.started {
		h.started = true
		h.c, h.err = s.cat.Open(ctx, name, "")
		if h.err == nil && timeouts != nil {
			h.c.SetCallTimeouts(*timeouts)
		}
	}
	if h.err != nil {
		return nil, nil, h.err
	}
	if h.table == string(key) {
		return h.c, h.rejected, nil
	}
	errs, err := configure(ctx, h.c, name, kind, table)
	if err != nil {
		h.table = ""
		return nil, nil, err
	}
	h.table, h.rejected = string(key), errs
	return h.c, errs, nil
}

// Explain is Catalog.Explain for a client the Session opened.
func (s *Session) Explain(c *hostclient.Client, err error) error { return s.cat.Explain(c, err) }

// Release closes the processes of every plugin but keep; a later use starts it again.
func (s *Session) Release(keep ...string) {
	s.mu.Lock()
	var drop []*held
	for name, h := range s.plugins {
		if !slices.Contains(keep, name) {
			drop = append(drop, h)
			delete(s.plugins, name)
		}
	}
	s.mu.Unlock()
	closeHeld(drop)
}

// Close kills every process of the Session; later uses fail. Safe to call more than once.
func (s *Session) Close() {
	s.mu.Lock()
	var drop []*held
	for _, h := range s.plugins {
		drop = append(drop, h)
	}
	s.plugins, s.closed = map[string]*held{}, true
	s.mu.Unlock()
	closeHeld(drop)
}

func closeHeld(hs []*held) {
	for _, h := range hs {
		h.mu.Lock()
		if h.c != nil {
			h.c.Close()
		}
		h.mu.Unlock()
	}
}

var _ config.PluginConfigurer = (*Session)(nil)
