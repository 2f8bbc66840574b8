package hostclient

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/lemctl/lemctl/sdk"
	enginev1 "github.com/lemctl/lemctl/sdk/proto/lem/engine/v1"
)

// engineClient is the host side of lem.engine.v1; it implements Engine.
type engineClient struct{ c enginev1.EngineClient }

func (e *engineClient) Load(ctx context.Context, req sdk.LoadRequest) (*sdk.LoadResult, error) {
	p := &enginev1.LoadRequest{Artifact: artifactToProto(&req.Artifact),
		Device:  &enginev1.Device{Kind: req.Device.Kind, Index: int32(req.Device.Index), Uuid: req.Device.UUID},
		Threads: int32(req.Threads), TokenIdsOnly: req.TokenIDsOnly}
	for _, c := range req.CPUs {
		p.Cpus = append(p.Cpus, int32(c))
	}
	resp, err := e.c.Load(ctx, p)
	if err != nil {
		return nil, fromStatus(err)
	}
	return &sdk.LoadResult{LoadNS: resp.GetLoadNs(), ResidentBytes: resp.GetResidentBytes(), ModelBytes: resp.GetModelBytes(),
		ExecutionProvider: resp.GetExecutionProvider(), RuntimeVersions: resp.GetRuntimeVersions(),
		Endpoint: resp.GetEndpoint(), Remote: resp.GetRemote(), Served: resp.GetServed()}, nil
}

func (e *engineClient) Warmup(ctx context.Context, req sdk.WarmupRequest) ([]sdk.BatchTiming, error) {
	resp, err := e.c.Warmup(ctx, &enginev1.WarmupRequest{Batch: generateToProto(req.GenerateRequest), Batches: int32(req.Batches)})
	if err != nil {
		return nil, fromStatus(err)
	}
	var out []sdk.BatchTiming
	for _, b := range resp.GetBatches() {
		out = append(out, batchFromProto(b))
	}
	return out, nil
}

// Generate turns the server stream back into emit calls. It fails if the stream ends without
// the batch timing, or carries anything after it.
func (e *engineClient) Generate(ctx context.Context, req sdk.GenerateRequest, emit func(sdk.RequestResult) error) (*sdk.BatchTiming, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := e.c.Generate(ctx, generateToProto(req))
	if err != nil {
		return nil, fromStatus(err)
	}
	var batch *sdk.BatchTiming
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fromStatus(err)
		}
		if batch != nil {
			return nil, fmt.Errorf("engine sent a message after the batch timing: protocol violation")
		}
		switch ev := msg.GetEvent().(type) {
		case *enginev1.GenerateResponse_Request:
			if err := emit(requestFromProto(ev.Request)); err != nil {
				return nil, err
			}
		case *enginev1.GenerateResponse_Batch:
			b := batchFromProto(ev.Batch)
			batch = &b
		default:
			return nil, fmt.Errorf("engine sent an empty generate message: protocol violation")
		}
	}
	if batch == nil {
		return nil, fmt.Errorf("engine ended the generate stream without a batch timing: protocol violation")
	}
	return batch, nil
}

// Serve opens the engine's Serve stream, sends every request from in (closing its side when in
// is closed) and turns the answers back into emit calls. An engine without continuous batching
// gives an error that errors.Is matches with sdk.ErrUnimplemented.
func (e *engineClient) Serve(ctx context.Context, opts sdk.ServeOptions, in <-chan sdk.ServeRequest, emit func(sdk.ServeEvent) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := e.c.Serve(ctx)
	if err != nil {
		return fromStatus(err)
	}
	if err := stream.Send(&enginev1.ServeRequest{Event: &enginev1.ServeRequest_Open{Open: &enginev1.ServeOpen{StepEvents: opts.StepEvents}}}); err != nil {
		return e.serveError(stream, err)
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case r, ok := <-in:
				if !ok {
					_ = stream.CloseSend()
					return
				}
				msg := &enginev1.ServeRequest{Event: &enginev1.ServeRequest_Cancel{Cancel: &enginev1.ServeCancel{Id: r.Prompt.ID}}}
				if !r.Cancel {
					g := generateToProto(sdk.GenerateRequest{Prompts: []sdk.Prompt{r.Prompt}, Decoding: r.Decoding})
					msg = &enginev1.ServeRequest{Event: &enginev1.ServeRequest_Submit{Submit: &enginev1.ServeSubmit{Prompt: g.Prompts[0], Decoding: g.Decoding}}}
				}
				if stream.Send(msg) != nil {
					return // the receive side sees the stream's error
				}
			}
		}
	}()
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fromStatus(err)
		}
		var ev sdk.ServeEvent
		switch x := msg.GetEvent().(type) {
		case *enginev1.ServeEvent_Done:
			r := requestFromProto(x.Done)
			ev.Done = &r
		case *enginev1.ServeEvent_Step:
			st := &sdk.ServeStep{MonoNS: x.Step.GetMonoNs(), BatchSize: int(x.Step.GetBatchSize())}
			for _, t := range x.Step.GetTokens() {
				st.Tokens = append(st.Tokens, sdk.StepToken{ID: t.GetId(), TokenID: t.GetTokenId(), Text: t.GetText()})
			}
			ev.Step = st
		default:
			return fmt.Errorf("engine sent an empty serve event: protocol violation")
		}
		if err := emit(ev); err != nil {
			return err
		}
	}
}

// serveError returns the stream's own status when a send failed because the stream ended.
func (e *engineClient) serveError(stream enginev1.Engine_ServeClient, sendErr error) error {
	if _, err := stream.Recv(); err != nil && !errors.Is(err, io.EOF) {
		return fromStatus(err)
	}
	return fromStatus(sendErr)
}

func (e *engineClient) Unload(ctx context.Context) error {
	_, err := e.c.Unload(ctx, &enginev1.UnloadRequest{})
	return fromStatus(err)
}

func generateToProto(g sdk.GenerateRequest) *enginev1.GenerateRequest {
	r := &enginev1.GenerateRequest{Decoding: &enginev1.Decoding{
		MaxNewTokens: int32(g.Decoding.MaxNewTokens), MaxInputTokens: int32(g.Decoding.MaxInputTokens),
		Greedy: g.Decoding.Greedy, Temperature: g.Decoding.Temperature, TopK: int32(g.Decoding.TopK),
		TopP: g.Decoding.TopP, Seed: g.Decoding.Seed, IgnoreEos: g.Decoding.IgnoreEOS, ReturnText: g.Decoding.ReturnText}}
	for _, p := range g.Prompts {
		r.Prompts = append(r.Prompts, &enginev1.Prompt{Id: p.ID, Text: p.Text, Ids: p.IDs})
	}
	return r
}

func requestFromProto(r *enginev1.RequestResult) sdk.RequestResult {
	return sdk.RequestResult{ID: r.GetId(), Index: int(r.GetIndex()), InputTokens: int(r.GetInputTokens()), OutputIDs: r.GetOutputIds(),
		Text: r.GetText(), StartMonoNS: r.GetStartMonoNs(), TokenMonoNS: r.GetTokenMonoNs(), FinishReason: r.GetFinishReason(), Truncated: r.GetTruncated(),
		ErrorKind: r.GetErrorKind(), Error: r.GetError(), OutputTokens: int(r.GetOutputTokens()), TokenCount: r.GetTokenCount(),
		ChunkMonoNS: r.GetChunkMonoNs(), MeanBatch: r.GetMeanBatch()}
}

func batchFromProto(b *enginev1.BatchTiming) sdk.BatchTiming {
	return sdk.BatchTiming{StartMonoNS: b.GetStartMonoNs(), FirstTokenMonoNS: b.GetFirstTokenMonoNs(), EndMonoNS: b.GetEndMonoNs(),
		Requests: int(b.GetRequests()), InputTokens: int(b.GetInputTokens()), OutputTokens: int(b.GetOutputTokens()), Steps: int(b.GetSteps())}
}
