package sdk_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/internal/wire"
)

type nopRepo struct{ sdk.Repository }

// nopMeter serves the energy kind; Run refuses the plugin before calling it.
type nopMeter struct{ sdk.Meter }

// TestRunReturnsErrorsInsteadOfExiting: every reason Serve has to exit 1 comes back from Run as
// an error that says what is wrong, and the test process lives on to check it.
func TestRunReturnsErrorsInsteadOfExiting(t *testing.T) {
	t.Setenv(wire.Handshake.MagicCookieKey, "") // as when a user runs the binary by hand
	cases := []struct {
		name string
		p    *sdk.Plugin
		want string
	}{
		{"nil plugin", nil, "nil Plugin"},
		{"no kind", &sdk.Plugin{Name: "empty"}, `plugin "empty" implements no kind`},
		{"bad name", &sdk.Plugin{Name: "has space", Repository: nopRepo{}}, "must be non-empty and contain no spaces"},
		{"repeated schema key", &sdk.Plugin{Name: "dup", Repository: nopRepo{}, Schema: []sdk.ConfigKey{{Key: "a"}, {Key: "a"}}},
			`config schema key "a" is empty or repeated`},
		{"run by hand", &sdk.Plugin{Name: "store", Repository: nopRepo{}}, "it is not run by hand.\nTry: lemctl plugins describe store"},
		{"sampling interval on a non-energy plugin", &sdk.Plugin{Name: "store", Repository: nopRepo{},
			Schema: []sdk.ConfigKey{{Key: "interval", Type: sdk.TypeDuration, SamplingInterval: true}}}, "serves no energy kind"},
		{"sampling interval not a duration", &sdk.Plugin{Name: "m", Energy: nopMeter{},
			Schema: []sdk.ConfigKey{{Key: "interval", Type: sdk.TypeString, SamplingInterval: true}}}, `"interval" is marked SamplingInterval but has type string`},
		{"two sampling intervals", &sdk.Plugin{Name: "m", Energy: nopMeter{},
			Schema: []sdk.ConfigKey{{Key: "a", Type: sdk.TypeDuration, SamplingInterval: true}, {Key: "b", Type: sdk.TypeDuration, SamplingInterval: true}}},
			`"a" and "b" are both marked SamplingInterval`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := sdk.Run(tc.p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestRunWithListenerReturnsWhenTheListenerCloses: the in-process form serves until its
// listener is closed and then returns nil.
func TestRunWithListenerReturnsWhenTheListenerCloses(t *testing.T) {
	dir, err := os.MkdirTemp("", "lem-run-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	l, err := net.Listen("unix", filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sdk.Run(&sdk.Plugin{Name: "store", Repository: nopRepo{}}, sdk.WithListener(l)) }()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard only
	defer cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after the listener closed = %v, want nil", err)
		}
	case <-ctx.Done():
		t.Fatal("Run did not return after its listener was closed")
	}
}
