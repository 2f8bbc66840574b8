package discovery

import (
	"context"
	"fmt"

	"strings"

	"github.com/lemctl/lemctl/host/config"
	"github.com/lemctl/lemctl/host/echo"
	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/hostclient"
)

// Open starts a fresh process of the selected plugin called name, which must serve kind (any
// kind when kind is ""). Where a lock applies the binary is hashed and compared first, and
// go-plugin checks the same sum again before it executes it. The plugin's stderr logs are
// forwarded through the Catalog's logger, named after the plugin. The caller closes the Client;
// Catalog.Close closes it too if it is still open.
//
// A name no available plugin has is a *config.PluginNotInstalledError (errors.Is
// config.ErrPluginNotInstalled) naming where discovery looked; a plugin that exists but is
// unusable is an *UnavailableError with the cause.
func (cat *Catalog) Open(ctx context.Context, name string, kind sdk.Kind) (*hostclient.Client, error) {
	p, err := cat.lookup(name, kind)
	if err != nil {
		return nil, err
	}
	var checksum []byte
	if lock := cat.locks[p.Dir]; lock != nil {
		fresh := *p
		if checksum, err = cat.checkLock(&fresh, lock); err != nil {
			return nil, &UnavailableError{Name: name, Path: p.Path, Reason: err.Error(), Err: err}
		}
	}
	cat.mu.Lock()
	closed := cat.closed
	cat.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("open plugin %q: the plugin catalog is closed", name)
	}
	tail := &tailBuffer{max: 20}
	cl, err := hostclient.Open(ctx, p.Path, cat.openOptions(newPluginLogger(cat.log, name, tail, false), checksum)...)
	if err != nil {
		err = explainStart(err, cat.startTimeout, tail)
		return nil, fmt.Errorf("start plugin %q (%s): %w", name, p.Path, err)
	}
	if got := cl.Info(); got.Name != name || (kind != "" && !got.Serves(kind)) {
		cl.Close()
		return nil, fmt.Errorf("start plugin %q (%s): it now answers as %q serving %v; the binary changed since discovery", name, p.Path, got.Name, got.Kinds)
	}
	cat.mu.Lock()
	defer cat.mu.Unlock()
	if cat.closed {
		cl.Close()
		return nil, fmt.Errorf("open plugin %q: the plugin catalog is closed", name)
	}
	cat.open = append(cat.open, cl)
	cat.tails.add(cl, tail)
	return cl, nil
}

// Explain returns err, from a call on c (a client this Catalog opened), with the cause a user
// needs when the call failed because the plugin process is gone: the last lines the plugin wrote
// to stderr, from its panic message on when it has one. Any other error is returned as it is.
func (cat *Catalog) Explain(c *hostclient.Client, err error) error { return cat.tails.explain(c, err) }

// lookup finds the selected plugin called name serving kind, or explains why there is none.
func (cat *Catalog) lookup(name string, kind sdk.Kind) (*Plugin, error) {
	if p, ok := cat.Find(name); ok {
		if kind == "" || p.Info.Serves(kind) {
			return p, nil
		}
		e := cat.notInstalled(name, kind)
		e.Other = fmt.Sprintf("the plugin %s at %s serves %s, not %s", echo.Quote(name), p.Path, kindList(p.Info.Kinds), kind)
		return nil, e
	}
	for _, c := range cat.Candidates {
		if c.Name == name && c.Err != nil {
			return nil, &UnavailableError{Name: name, Path: c.Path, Reason: c.Reason, Err: c.Err}
		}
	}
	return nil, cat.notInstalled(name, kind)
}

func (cat *Catalog) notInstalled(name string, kind sdk.Kind) *config.PluginNotInstalledError {
	e := &config.PluginNotInstalledError{Plugin: name, Kind: kind, Searched: cat.Searched()}
	var of []*Plugin
	if kind == "" {
		of = cat.Plugins()
	} else {
		of = cat.ByKind(kind)
	}
	for _, p := range of {
		e.Installed = append(e.Installed, p.Name)
	}
	return e
}

// Close kills every plugin process opened through the Catalog that is still running, and makes
// later Opens fail. It is safe to call more than once.
func (cat *Catalog) Close() {
	cat.mu.Lock()
	open := cat.open
	cat.open, cat.closed = nil, true
	cat.mu.Unlock()
	for _, cl := range open {
		cl.Close()
	}
}

// ConfigurePlugin implements config.PluginConfigurer for a one-off check: it starts the
// plugin, sends it table, collects the per-key errors and kills it. A command that goes on to
// use the plugin checks through a Session instead, which keeps the process.
func (cat *Catalog) ConfigurePlugin(ctx context.Context, plugin string, kind sdk.Kind, table map[string]any) ([]sdk.ConfigError, error) {
	s := cat.NewSession()
	defer s.Close()
	return s.ConfigurePlugin(ctx, plugin, kind, table)
}

var _ config.PluginConfigurer = (*Catalog)(nil)

func kindList(ks []sdk.Kind) string {
	if len(ks) == 0 {
		return "no kind"
	}
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = string(k)
	}
	return strings.Join(out, " and ")
}
