package worker

import (
	"context"
	"testing"

	"github.com/lemctl/lemctl/sdk"
)

// blockingEngine streams one result, then blocks until released.
type blockingEngine struct {
	sdk.Engine
	streamed, release chan struct{}
}

func (e blockingEngine) Generate(_ context.Context, _ sdk.GenerateRequest, emit func(sdk.RequestResult) error) (*sdk.BatchTiming, error) {
	_ = emit(sdk.RequestResult{ID: "a"})
	close(e.streamed)
	<-e.release
	return &sdk.BatchTiming{}, nil
}

// The heartbeat names the call in flight and its start; a streamed result moves the counter;
// between calls no call is named.
func TestHeartbeatNamesTheCallInFlight(t *testing.T) {
	tr := &tracker{}
	tr.setPhase("measured")
	before := tr.heartbeat()
	if before.Call != "" || before.Phase != "measured" {
		t.Fatalf("between calls: %+v", before)
	}
	e := blockingEngine{streamed: make(chan struct{}), release: make(chan struct{})}
	te := trackedEngine{Engine: e, t: tr}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = te.Generate(context.Background(), sdk.GenerateRequest{}, func(sdk.RequestResult) error { return nil })
	}()
	<-e.streamed
	in := tr.heartbeat()
	if in.Call != "engine.Generate" || in.CallSinceUnixNS == 0 || in.Seq != before.Seq+2 {
		t.Errorf("in the call: %+v (before: %+v); want engine.Generate, its start, the counter moved by the call and the result", in, before)
	}
	again := tr.heartbeat()
	if again.Seq != in.Seq || again.IdleS < in.IdleS {
		t.Errorf("nothing happened, yet the counter moved or the idle time shrank: %+v then %+v", in, again)
	}
	close(e.release)
	<-done
	if after := tr.heartbeat(); after.Call != "" || after.Seq != in.Seq+1 {
		t.Errorf("after the call: %+v", after)
	}
}
