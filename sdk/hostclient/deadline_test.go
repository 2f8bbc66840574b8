package hostclient_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/hostclient"
)

// hangingMeter's Start never answers until the host gives up on it.
type hangingMeter struct{ bigMeter }

func (hangingMeter) Start(ctx context.Context, _ sdk.StartRequest) (*sdk.Session, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestCallDeadlineNamesPluginCallAndLimit(t *testing.T) {
	c := connect(t, &sdk.Plugin{Name: "sleepy", Version: "1.0.0", Energy: hangingMeter{}})
	if got := c.CallTimeouts(); got != hostclient.DefaultCallTimeouts() {
		t.Fatalf("a new client's deadlines are %+v, want the defaults %+v", got, hostclient.DefaultCallTimeouts())
	}
	c.SetCallTimeouts(hostclient.CallTimeouts{Control: 50 * time.Millisecond})
	_, err := c.Meter().Start(context.Background(), sdk.StartRequest{})
	var de *hostclient.DeadlineError
	if !errors.As(err, &de) {
		t.Fatalf("Start of a hanging meter: %v (%T), want a *DeadlineError", err, err)
	}
	if de.Plugin != "sleepy" || de.Call != "Meter.Start" || de.After != 50*time.Millisecond {
		t.Errorf("deadline error = %+v", de)
	}
	if want := "plugin sleepy: call Meter.Start did not answer within 50ms"; err.Error() != want {
		t.Errorf("message %q, want %q", err.Error(), want)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Error("a DeadlineError does not match context.DeadlineExceeded")
	}
	// Calls that answer are not affected by the deadline.
	if _, err := c.Meter().Inventory(context.Background()); err != nil {
		t.Errorf("Inventory under a deadline: %v", err)
	}
}

func TestCallerCancelIsNotADeadlineError(t *testing.T) {
	c := connect(t, &sdk.Plugin{Name: "sleepy", Version: "1.0.0", Energy: hangingMeter{}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Meter().Start(ctx, sdk.StartRequest{})
	var de *hostclient.DeadlineError
	if err == nil || errors.As(err, &de) {
		t.Fatalf("Start with a cancelled context: %v, want a cancellation, not a DeadlineError", err)
	}
}
