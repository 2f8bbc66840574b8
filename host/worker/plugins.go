package worker

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/lemctl/lemctl/host/discovery"
	"github.com/lemctl/lemctl/host/launch"
	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/hostclient"
)

// opened holds the plugin processes of a worker; one process per binary even when it serves
// several roles (the onnx plugin is loader and engine).
type opened struct {
	opener discovery.PinnedOpener
	byPath map[string]*hostclient.Client
	tables map[string]map[string]any // the table each process was configured with
	order  []*hostclient.Client
}

func (o *opened) closeAll() {
	for i := len(o.order) - 1; i >= 0; i-- {
		o.order[i].Close()
	}
}

// open starts (or reuses) the plugin of ref, pinned to its sha256, and configures it with its
// table (discovery.PinnedOpener). A binary that serves several roles is started once: the parent
// resolved one table per plugin, so a second role with another table is an error, never a
// silently ignored table.
func (o *opened) open(ctx context.Context, ref launch.PluginRef, kind sdk.Kind) (*hostclient.Client, error) {
	if c, ok := o.byPath[ref.Path]; ok {
		if !c.Info().Serves(kind) {
			return nil, fmt.Errorf("plugin %s (%s) does not serve kind %s (it serves %v)", ref.Name, ref.Path, kind, c.Info().Kinds)
		}
		if !reflect.DeepEqual(o.tables[ref.Path], ref.Config) {
			return nil, fmt.Errorf("plugin %s (%s) is given two different tables for its roles; the launch spec must carry one table per plugin", ref.Name, ref.Path)
		}
		return c, nil
	}
	c, err := o.opener.Open(ctx, ref.Name, ref.Path, ref.SHA256, kind, ref.Config)
	if err != nil {
		return nil, err
	}
	if o.byPath == nil {
		o.byPath, o.tables = map[string]*hostclient.Client{}, map[string]map[string]any{}
	}
	o.byPath[ref.Path], o.tables[ref.Path] = c, ref.Config
	o.order = append(o.order, c)
	return c, nil
}

// role is one use of a plugin in the launch spec.
type role struct {
	ref  launch.PluginRef
	kind sdk.Kind
}

// startAll starts every distinct binary of roles at once (each once, for its first role), so
// the worker waits for the slowest plugin start rather than their sum. The processes are kept
// in the order of roles; open then reuses them. On error every process started is closed by
// closeAll, as for open.
func (o *opened) startAll(ctx context.Context, roles []role) error {
	var first []role
	seen := map[string]bool{}
	for _, r := range roles {
		if _, ok := o.byPath[r.ref.Path]; !ok && !seen[r.ref.Path] {
			seen[r.ref.Path] = true
			first = append(first, r)
		}
	}
	clients := make([]*hostclient.Client, len(first))
	errs := make([]error, len(first))
	var wg sync.WaitGroup
	for i, r := range first {
		wg.Add(1)
		go func() {
			defer wg.Done()
			clients[i], errs[i] = o.opener.Open(ctx, r.ref.Name, r.ref.Path, r.ref.SHA256, r.kind, r.ref.Config)
		}()
	}
	wg.Wait()
	if o.byPath == nil {
		o.byPath, o.tables = map[string]*hostclient.Client{}, map[string]map[string]any{}
	}
	for i, r := range first {
		if clients[i] != nil {
			o.byPath[r.ref.Path], o.tables[r.ref.Path] = clients[i], r.ref.Config
			o.order = append(o.order, clients[i])
		}
	}
	return errors.Join(errs...)
}
