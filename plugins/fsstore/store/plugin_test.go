package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/hostclient"
	"github.com/lemctl/lemctl/sdk/plugintest"
)

// The sdk's conformance suite, over an in-process gRPC connection.
func TestConformance(t *testing.T) {
	plugintest.Run(t, NewPlugin(), plugintest.Options{
		Config: map[string]any{"path": t.TempDir()},
		BadConfigs: []plugintest.BadConfig{
			{Table: map[string]any{"path": 3}, Key: "path"},
			{Table: map[string]any{"path": ""}, Key: "path"},
			{Table: map[string]any{"root": "x"}, Key: "root"},
		},
	})
}

// The real binary, started the way lemctl starts it: results written over gRPC (a payload
// larger than one 1 MiB chunk) land byte for byte under the configured path, and sentinel errors
// survive the RPC.
func TestPluginBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin binary")
	}
	bin := filepath.Join(t.TempDir(), "lem-plugin-fsstore")
	build := exec.Command("go", "build", "-o", bin, "../cmd/lem-plugin-fsstore")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := hostclient.Open(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if info := c.Info(); info.Name != Name || info.Version != Version || !info.Serves(sdk.KindRepository) {
		t.Fatalf("info = %+v", info)
	}
	if errs, err := c.Configure(ctx, map[string]any{"path": ""}); err != nil || len(errs) != 1 || errs[0].Key != "path" {
		t.Fatalf("Configure with an empty path = %v, %v", errs, err)
	}
	root := t.TempDir()
	if errs, err := c.Configure(ctx, map[string]any{"path": root}); err != nil || len(errs) != 0 {
		t.Fatalf("Configure = %v, %v", errs, err)
	}
	repo := c.Repository()
	payload := bytes.Repeat([]byte("0123456789abcdef"), 3<<16) // 3 MiB
	st, err := repo.SaveRaw(ctx, "e2e", 0, payload)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.MarkComplete(ctx, "e2e", 0, st.SHA256); err != nil {
		t.Fatal(err)
	}
	onDisk, err := os.ReadFile(filepath.Join(root, "raw", "e2e", "process_0.json"))
	if err != nil || !bytes.Equal(onDisk, payload) {
		t.Fatalf("file on disk: %d bytes, %v; want the %d bytes sent", len(onDisk), err, len(payload))
	}
	back, err := repo.LoadRaw(ctx, "e2e", 0)
	if err != nil || !bytes.Equal(back, payload) {
		t.Fatalf("LoadRaw: %d bytes, %v", len(back), err)
	}
	if _, err := repo.SaveRaw(ctx, "e2e", 0, payload); !errors.Is(err, sdk.ErrAlreadyExists) {
		t.Errorf("SaveRaw twice over gRPC: %v, want ErrAlreadyExists", err)
	}
	if _, err := repo.SaveRaw(ctx, "../x", 0, payload); !errors.Is(err, sdk.ErrInvalidArgument) {
		t.Errorf("SaveRaw ../x over gRPC: %v, want ErrInvalidArgument", err)
	}
	if _, err := repo.LoadAggregated(ctx, "e2e"); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("LoadAggregated over gRPC: %v, want ErrNotFound", err)
	}
	entries, err := repo.ListRaw(ctx, "e2e")
	if err != nil || len(entries) != 1 || entries[0].Marker == nil || entries[0].SHA256 != st.SHA256 {
		t.Errorf("ListRaw = %+v, %v", entries, err)
	}
	// A bad marker and a stray cross gRPC as the store reports them.
	dir := filepath.Join(root, "raw", "e2e")
	if err := os.WriteFile(filepath.Join(dir, ".completed_0"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "process_00.json"), payload[:16], 0o644); err != nil {
		t.Fatal(err)
	}
	entries, err = repo.ListRaw(ctx, "e2e")
	if err != nil || len(entries) != 1 || entries[0].Marker != nil || !strings.Contains(entries[0].MarkerProblem, ".completed_0") ||
		entries[0].Path != filepath.Join(dir, "process_0.json") {
		t.Errorf("ListRaw with a bad marker = %+v, %v", entries, err)
	}
	sl, ok := repo.(sdk.StrayLister)
	if !ok {
		t.Fatalf("the gRPC repository client is not a StrayLister")
	}
	strays, err := sl.ListStrays(ctx, "e2e")
	if err != nil || len(strays) != 1 || strays[0].Path != filepath.Join(dir, "process_00.json") || strays[0].Problem == "" {
		t.Errorf("ListStrays over gRPC = %+v, %v", strays, err)
	}
}
