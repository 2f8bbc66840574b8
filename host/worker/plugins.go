package worker

import (
	"context"
	"encoding/hex"
	"fmt"

	"github.com/hashicorp/go-hclog"

	"github.com/lemctl/lemctl/host/launch"
	"github.com/lemctl/lemctl/sdk"
)

// opened holds the plugin processes of a worker; one process per binary even when it serves
// several roles (the onnx plugin is loader and engine).
type opened struct {
	byPath map[string]*sdk.Client
	order  []*sdk.Client
}

func (o *opened) closeAll() {
	for i := len(o.order) - 1; i >= 0; i-- {
		o.order[i].Close()
	}
}

// open starts (or reuses) the plugin of ref, pinned to its sha256, and configures it with its
// table. A plugin whose kind list lacks kind is an error naming both.
func (o *opened) open(ctx context.Context, ref launch.PluginRef, kind sdk.Kind, log hclog.Logger) (*sdk.Client, error) {
	if c, ok := o.byPath[ref.Path]; ok {
		if !c.Info().Serves(kind) {
			return nil, fmt.Errorf("plugin %s (%s) does not serve kind %s", ref.Name, ref.Path, kind)
		}
		return c, nil
	}
	opts := []sdk.OpenOption{sdk.WithClientLogger(log.Named(ref.Name))}
	if ref.SHA256 != "" {
		sum, err := hex.DecodeString(ref.SHA256)
		if err != nil {
			return nil, fmt.Errorf("plugin %s: bad pinned sha256 %q", ref.Name, ref.SHA256)
		}
		opts = append(opts, sdk.WithChecksum(sum))
	}
	c, err := sdk.Open(ctx, ref.Path, opts...)
	if err != nil {
		return nil, fmt.Errorf("start plugin %s (%s): %w", ref.Name, ref.Path, err)
	}
	if o.byPath == nil {
		o.byPath = map[string]*sdk.Client{}
	}
	o.byPath[ref.Path] = c
	o.order = append(o.order, c)
	if !c.Info().Serves(kind) {
		return nil, fmt.Errorf("plugin %s (%s) does not serve kind %s (it serves %v)", ref.Name, ref.Path, kind, c.Info().Kinds)
	}
	errs, err := c.Configure(ctx, ref.Config)
	if err != nil {
		return nil, fmt.Errorf("configure plugin %s: %w", ref.Name, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("plugin %s rejected its configuration: %v", ref.Name, errs)
	}
	return c, nil
}
