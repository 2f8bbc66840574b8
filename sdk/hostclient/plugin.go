package hostclient

import (
	"context"
	"encoding/json"

	"github.com/lemctl/lemctl/sdk"
	pluginv1 "github.com/lemctl/lemctl/sdk/proto/lem/plugin/v1"
)

// baseClient is the host side of lem.plugin.v1.
type baseClient struct{ c pluginv1.PluginClient }

func (b *baseClient) Info(ctx context.Context) (sdk.Info, error) {
	resp, err := b.c.Info(ctx, &pluginv1.InfoRequest{})
	if err != nil {
		return sdk.Info{}, fromStatus(err)
	}
	return infoFromProto(resp), nil
}

func (b *baseClient) Configure(ctx context.Context, cfg map[string]any) ([]sdk.ConfigError, error) {
	if cfg == nil {
		cfg = map[string]any{}
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	resp, err := b.c.Configure(ctx, &pluginv1.ConfigureRequest{ConfigJson: raw})
	if err != nil {
		return nil, fromStatus(err)
	}
	var out []sdk.ConfigError
	for _, e := range resp.GetErrors() {
		out = append(out, sdk.ConfigError{Key: e.GetKey(), Message: e.GetMessage(), Valid: e.GetValid()})
	}
	return out, nil
}

func infoFromProto(r *pluginv1.InfoResponse) sdk.Info {
	i := sdk.Info{Name: r.GetName(), Version: r.GetVersion(), Description: r.GetDescription(), Capabilities: r.GetCapabilities()}
	for _, k := range r.GetKinds() {
		i.Kinds = append(i.Kinds, sdk.Kind(k))
	}
	for _, v := range r.GetApiVersions() {
		i.APIVersions = append(i.APIVersions, int(v))
	}
	for _, k := range r.GetConfigSchema() {
		ck := sdk.ConfigKey{Key: k.GetKey(), Type: k.GetType(), Doc: k.GetDoc(), Enum: k.GetEnum(), Min: k.Min, Max: k.Max, SamplingInterval: k.GetSamplingInterval()}
		if k.GetDefaultJson() != "" {
			var v any
			if json.Unmarshal([]byte(k.GetDefaultJson()), &v) == nil {
				ck.Default = v
			}
		}
		i.ConfigSchema = append(i.ConfigSchema, ck)
	}
	return i
}
