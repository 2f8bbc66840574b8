package hostclient_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/hostclient"
)

// TestInProcessReturnsWhyAPluginCannotBeServed: a Plugin that breaks a rule gets sdk.Run's
// error back from InProcess, not a hang or a client of nothing.
func TestInProcessReturnsWhyAPluginCannotBeServed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard only
	defer cancel()
	c, err := hostclient.InProcess(ctx, &sdk.Plugin{Name: "empty"})
	if err == nil {
		c.Close()
		t.Fatal("InProcess served a plugin of no kind")
	}
	if want := `plugin "empty" implements no kind`; !strings.Contains(err.Error(), want) {
		t.Errorf("InProcess error = %q, want it to contain %q", err, want)
	}
}

// TestInProcessCloseStopsTheServer: after Close the plugin answers no more.
func TestInProcessCloseStopsTheServer(t *testing.T) {
	c, err := hostclient.InProcess(context.Background(), &sdk.Plugin{Name: "sentinels", Repository: &sentinelRepo{}})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard only
	defer cancel()
	if _, err := c.Repository().List(ctx); err == nil || ctx.Err() != nil {
		t.Fatalf("List after Close = %v (context: %v), want an immediate error", err, ctx.Err())
	}
}
