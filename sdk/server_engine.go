package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lemctl/lemctl/sdk/internal/wire"
	enginev1 "github.com/lemctl/lemctl/sdk/proto/lem/engine/v1"
)

func engineService(impl Engine) *wire.Service {
	return &wire.Service{Register: func(s grpc.ServiceRegistrar) { enginev1.RegisterEngineServer(s, &engineServer{impl: impl}) }}
}

type engineServer struct {
	enginev1.UnimplementedEngineServer
	impl Engine
}

func (s *engineServer) Load(ctx context.Context, req *enginev1.LoadRequest) (*enginev1.LoadResponse, error) {
	a := artifactFromProto(req.GetArtifact())
	if a == nil {
		return nil, toStatus(fmt.Errorf("load request without an artifact: %w", ErrInvalidArgument))
	}
	lr := LoadRequest{Artifact: *a, Device: Device{Kind: req.GetDevice().GetKind(), Index: int(req.GetDevice().GetIndex()), UUID: req.GetDevice().GetUuid()},
		Threads: int(req.GetThreads()), TokenIDsOnly: req.GetTokenIdsOnly()}
	for _, c := range req.GetCpus() {
		lr.CPUs = append(lr.CPUs, int(c))
	}
	res, err := s.impl.Load(ctx, lr)
	if err != nil {
		return nil, toStatus(err)
	}
	return &enginev1.LoadResponse{LoadNs: res.LoadNS, ResidentBytes: res.ResidentBytes, ModelBytes: res.ModelBytes,
		ExecutionProvider: res.ExecutionProvider, RuntimeVersions: res.RuntimeVersions,
		Endpoint: res.Endpoint, Remote: res.Remote, Served: res.Served}, nil
}

func (s *engineServer) Warmup(ctx context.Context, req *enginev1.WarmupRequest) (*enginev1.WarmupResponse, error) {
	timings, err := s.impl.Warmup(ctx, WarmupRequest{GenerateRequest: generateFromProto(req.GetBatch()), Batches: int(req.GetBatches())})
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &enginev1.WarmupResponse{}
	for _, t := range timings {
		resp.Batches = append(resp.Batches, batchToProto(t))
	}
	return resp, nil
}

func (s *engineServer) Generate(req *enginev1.GenerateRequest, stream enginev1.Engine_GenerateServer) error {
	bt, err := s.impl.Generate(stream.Context(), generateFromProto(req), func(r RequestResult) error {
		return stream.Send(&enginev1.GenerateResponse{Event: &enginev1.GenerateResponse_Request{Request: requestToProto(r)}})
	})
	if err != nil {
		return toStatus(err)
	}
	if bt == nil {
		return toStatus(errors.New("engine returned no batch timing"))
	}
	return stream.Send(&enginev1.GenerateResponse{Event: &enginev1.GenerateResponse_Batch{Batch: batchToProto(*bt)}})
}

func (s *engineServer) Unload(ctx context.Context, _ *enginev1.UnloadRequest) (*enginev1.UnloadResponse, error) {
	if err := s.impl.Unload(ctx); err != nil {
		return nil, toStatus(err)
	}
	return &enginev1.UnloadResponse{}, nil
}

// Serve adapts the bidirectional stream to ContinuousEngine.Serve: a goroutine feeds the
// requests the host sends into the channel (closing it when the host closes its side), and emit
// sends each event back. Engines without continuous batching answer Unimplemented.
func (s *engineServer) Serve(stream enginev1.Engine_ServeServer) error {
	ce, ok := s.impl.(ContinuousEngine)
	if !ok {
		return status.Error(codes.Unimplemented, "this engine has no continuous batching (it does not implement Serve)")
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	open := first.GetOpen()
	if open == nil {
		return toStatus(fmt.Errorf("%w: a Serve stream must start with ServeOpen", ErrInvalidArgument))
	}
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	in := make(chan ServeRequest)
	go func() {
		defer close(in)
		for {
			msg, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				cancel(err)
				return
			}
			var r ServeRequest
			switch ev := msg.GetEvent().(type) {
			case *enginev1.ServeRequest_Submit:
				g := generateFromProto(&enginev1.GenerateRequest{Prompts: []*enginev1.Prompt{ev.Submit.GetPrompt()}, Decoding: ev.Submit.GetDecoding()})
				r = ServeRequest{Prompt: g.Prompts[0], Decoding: g.Decoding}
			case *enginev1.ServeRequest_Cancel:
				r = ServeRequest{Prompt: Prompt{ID: ev.Cancel.GetId()}, Cancel: true}
			default:
				cancel(fmt.Errorf("%w: a Serve stream carries Submit and Cancel after its ServeOpen", ErrInvalidArgument))
				return
			}
			select {
			case in <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	err = ce.Serve(ctx, ServeOptions{StepEvents: open.GetStepEvents()}, in, func(ev ServeEvent) error {
		switch {
		case ev.Done != nil:
			return stream.Send(&enginev1.ServeEvent{Event: &enginev1.ServeEvent_Done{Done: requestToProto(*ev.Done)}})
		case ev.Step != nil:
			st := &enginev1.ServeStep{MonoNs: ev.Step.MonoNS, BatchSize: int32(ev.Step.BatchSize)}
			for _, t := range ev.Step.Tokens {
				st.Tokens = append(st.Tokens, &enginev1.StepToken{Id: t.ID, TokenId: t.TokenID, Text: t.Text})
			}
			return stream.Send(&enginev1.ServeEvent{Event: &enginev1.ServeEvent_Step{Step: st}})
		}
		return errors.New("engine emitted an empty serve event")
	})
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		return toStatus(cause)
	}
	return toStatus(err)
}

func generateFromProto(r *enginev1.GenerateRequest) GenerateRequest {
	d := r.GetDecoding()
	g := GenerateRequest{Decoding: Decoding{MaxNewTokens: int(d.GetMaxNewTokens()), MaxInputTokens: int(d.GetMaxInputTokens()),
		Greedy: d.GetGreedy(), Temperature: d.GetTemperature(), TopK: int(d.GetTopK()), TopP: d.GetTopP(), Seed: d.GetSeed(),
		IgnoreEOS: d.GetIgnoreEos(), ReturnText: d.GetReturnText()}}
	for _, p := range r.GetPrompts() {
		g.Prompts = append(g.Prompts, Prompt{ID: p.GetId(), Text: p.GetText(), IDs: p.GetIds()})
	}
	return g
}

func requestToProto(r RequestResult) *enginev1.RequestResult {
	return &enginev1.RequestResult{Id: r.ID, Index: int32(r.Index), InputTokens: int32(r.InputTokens), OutputIds: r.OutputIDs,
		Text: r.Text, StartMonoNs: r.StartMonoNS, TokenMonoNs: r.TokenMonoNS, FinishReason: r.FinishReason, Truncated: r.Truncated,
		ErrorKind: r.ErrorKind, Error: r.Error, OutputTokens: int32(r.OutputTokens), TokenCount: r.TokenCount, ChunkMonoNs: r.ChunkMonoNS,
		MeanBatch: r.MeanBatch}
}

func batchToProto(b BatchTiming) *enginev1.BatchTiming {
	return &enginev1.BatchTiming{StartMonoNs: b.StartMonoNS, FirstTokenMonoNs: b.FirstTokenMonoNS, EndMonoNs: b.EndMonoNS,
		Requests: int32(b.Requests), InputTokens: int32(b.InputTokens), OutputTokens: int32(b.OutputTokens), Steps: int32(b.Steps)}
}
