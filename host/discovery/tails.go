package discovery

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lemctl/lemctl/sdk/hostclient"
)

// tails remembers the stderr tail of each plugin process opened through its owner (a Catalog or
// a PinnedOpener), so that an error from a call on a plugin that died can name the cause. The
// zero value is ready to use.
type tails struct {
	mu       sync.Mutex
	byClient map[*hostclient.Client]*tailBuffer
	order    []*hostclient.Client
}

func (t *tails) add(c *hostclient.Client, tail *tailBuffer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byClient == nil {
		t.byClient = map[*hostclient.Client]*tailBuffer{}
	}
	t.byClient[c] = tail
	t.order = append(t.order, c)
}

// explain returns err, from a call on c, with the cause a user needs when the call failed
// because the plugin process is gone (a crash or panic shows up as gRPC Unavailable or EOF,
// "error reading from server: EOF"): the last lines the plugin wrote to stderr, from its panic
// message on when it has one. Any other error is returned as it is.
func (t *tails) explain(c *hostclient.Client, err error) error {
	if err == nil || !pluginGone(err) {
		return err
	}
	t.mu.Lock()
	tail := t.byClient[c]
	t.mu.Unlock()
	if tail == nil {
		return err
	}
	return withTail(c, tail, err)
}

// explainGone is explain for an error whose plugin is not known (a worker's phase failed): when
// err says a plugin connection broke, it adds the stderr tail of each plugin process that has
// exited. Any other error, or one no exited plugin explains, is returned as it is.
func (t *tails) explainGone(err error) error {
	if err == nil || !pluginGone(err) {
		return err
	}
	t.mu.Lock()
	clients := append([]*hostclient.Client(nil), t.order...)
	t.mu.Unlock()
	// A process that just died may not be reaped yet: look again for a short while (a hang
	// guard, not a timing assumption).
	for range 20 {
		for _, c := range clients {
			if c.Exited() {
				t.mu.Lock()
				tail := t.byClient[c]
				t.mu.Unlock()
				return withTail(c, tail, err)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}

// withTail adds tail's last lines to err, waiting briefly for them: go-plugin forwards stderr on
// its own goroutine, so the dying lines can arrive just after the failed call returns (a hang
// guard, not a timing assumption).
func withTail(c *hostclient.Client, tail *tailBuffer, err error) error {
	for i := 0; i < 40 && tail.String() == ""; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	last := tail.crash(5)
	if last == "" {
		return fmt.Errorf("%w (the plugin process %s ended without writing to stderr)", err, c.Path())
	}
	return fmt.Errorf("%w; the plugin process %s died, its stderr ended with: %s", err, c.Path(), last)
}

// pluginGone reports whether err says the connection to the plugin broke: the process exited.
func pluginGone(err error) bool {
	var rpc *hostclient.RPCError
	if errors.As(err, &rpc) && rpc.Code == codes.Unavailable {
		return true
	}
	if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable {
		return true
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "EOF")
}
