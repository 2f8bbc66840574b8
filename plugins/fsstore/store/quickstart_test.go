package store

import (
	"context"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/lemctl/lemctl/sdk"
)

// The [repository] section of the shipped quickstart experiment configures this plugin without
// errors. The host owns the `plugin` key (which plugin to use) and passes --results-dir as
// `path`; the rest of the table is the plugin's.
func TestQuickstartRepositorySection(t *testing.T) {
	var doc map[string]any
	if _, err := toml.DecodeFile("../../../examples/quickstart.toml", &doc); err != nil {
		t.Fatal(err)
	}
	section, ok := doc["repository"].(map[string]any)
	if !ok {
		t.Fatal("examples/quickstart.toml has no [repository] table")
	}
	if section["plugin"] != Name {
		t.Fatalf("[repository] plugin = %v, want %q", section["plugin"], Name)
	}
	table := map[string]any{"path": t.TempDir()}
	for k, v := range section {
		if k != "plugin" {
			table[k] = v
		}
	}
	p := NewPlugin()
	cfg, errs := sdk.ValidateConfig(p.Schema, table)
	if len(errs) != 0 {
		t.Fatalf("[repository] does not validate against fsstore's schema: %v", errs)
	}
	if errs, err := p.Configure(context.Background(), cfg); err != nil || len(errs) != 0 {
		t.Fatalf("Configure = %v, %v", errs, err)
	}
	if got := p.Repository.(*Store).Root(); got != table["path"] {
		t.Errorf("root = %q, want %q", got, table["path"])
	}
}
