package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"

	enginev1 "github.com/lemctl/lemctl/sdk/proto/lem/engine/v1"
)

// engineService serves enginev1.Engine with impl; with impl nil (the host) it only makes clients.
func engineService(impl Engine) *grpcService {
	return &grpcService{
		register: func(s *grpc.Server) { enginev1.RegisterEngineServer(s, &engineServer{impl: impl}) },
		client:   func(c *grpc.ClientConn) any { return &engineClient{c: enginev1.NewEngineClient(c)} },
	}
}

type engineServer struct {
	enginev1.UnimplementedEngineServer
	impl Engine
}

func (s *engineServer) Load(ctx context.Context, req *enginev1.LoadRequest) (*enginev1.LoadResponse, error) {
	a := ArtifactFromProto(req.GetArtifact())
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
		ExecutionProvider: res.ExecutionProvider, RuntimeVersions: res.RuntimeVersions}, nil
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

// engineClient is the host side of lem.engine.v1; it implements Engine.
type engineClient struct{ c enginev1.EngineClient }

func (e *engineClient) Load(ctx context.Context, req LoadRequest) (*LoadResult, error) {
	p := &enginev1.LoadRequest{Artifact: ArtifactToProto(&req.Artifact),
		Device:  &enginev1.Device{Kind: req.Device.Kind, Index: int32(req.Device.Index), Uuid: req.Device.UUID},
		Threads: int32(req.Threads), TokenIdsOnly: req.TokenIDsOnly}
	for _, c := range req.CPUs {
		p.Cpus = append(p.Cpus, int32(c))
	}
	resp, err := e.c.Load(ctx, p)
	if err != nil {
		return nil, fromStatus(err)
	}
	return &LoadResult{LoadNS: resp.GetLoadNs(), ResidentBytes: resp.GetResidentBytes(), ModelBytes: resp.GetModelBytes(),
		ExecutionProvider: resp.GetExecutionProvider(), RuntimeVersions: resp.GetRuntimeVersions()}, nil
}

func (e *engineClient) Warmup(ctx context.Context, req WarmupRequest) ([]BatchTiming, error) {
	resp, err := e.c.Warmup(ctx, &enginev1.WarmupRequest{Batch: generateToProto(req.GenerateRequest), Batches: int32(req.Batches)})
	if err != nil {
		return nil, fromStatus(err)
	}
	var out []BatchTiming
	for _, b := range resp.GetBatches() {
		out = append(out, batchFromProto(b))
	}
	return out, nil
}

// Generate turns the server stream back into emit calls. It fails if the stream ends without
// the batch timing, or carries anything after it.
func (e *engineClient) Generate(ctx context.Context, req GenerateRequest, emit func(RequestResult) error) (*BatchTiming, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := e.c.Generate(ctx, generateToProto(req))
	if err != nil {
		return nil, fromStatus(err)
	}
	var batch *BatchTiming
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

func (e *engineClient) Unload(ctx context.Context) error {
	_, err := e.c.Unload(ctx, &enginev1.UnloadRequest{})
	return fromStatus(err)
}

func generateToProto(g GenerateRequest) *enginev1.GenerateRequest {
	r := &enginev1.GenerateRequest{Decoding: &enginev1.Decoding{
		MaxNewTokens: int32(g.Decoding.MaxNewTokens), MaxInputTokens: int32(g.Decoding.MaxInputTokens),
		Greedy: g.Decoding.Greedy, Temperature: g.Decoding.Temperature, TopK: int32(g.Decoding.TopK),
		TopP: g.Decoding.TopP, Seed: g.Decoding.Seed, IgnoreEos: g.Decoding.IgnoreEOS, ReturnText: g.Decoding.ReturnText}}
	for _, p := range g.Prompts {
		r.Prompts = append(r.Prompts, &enginev1.Prompt{Id: p.ID, Text: p.Text, Ids: p.IDs})
	}
	return r
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
		Text: r.Text, StartMonoNs: r.StartMonoNS, TokenMonoNs: r.TokenMonoNS, FinishReason: r.FinishReason, Truncated: r.Truncated}
}

func requestFromProto(r *enginev1.RequestResult) RequestResult {
	return RequestResult{ID: r.GetId(), Index: int(r.GetIndex()), InputTokens: int(r.GetInputTokens()), OutputIDs: r.GetOutputIds(),
		Text: r.GetText(), StartMonoNS: r.GetStartMonoNs(), TokenMonoNS: r.GetTokenMonoNs(), FinishReason: r.GetFinishReason(), Truncated: r.GetTruncated()}
}

func batchToProto(b BatchTiming) *enginev1.BatchTiming {
	return &enginev1.BatchTiming{StartMonoNs: b.StartMonoNS, FirstTokenMonoNs: b.FirstTokenMonoNS, EndMonoNs: b.EndMonoNS,
		Requests: int32(b.Requests), InputTokens: int32(b.InputTokens), OutputTokens: int32(b.OutputTokens), Steps: int32(b.Steps)}
}

func batchFromProto(b *enginev1.BatchTiming) BatchTiming {
	return BatchTiming{StartMonoNS: b.GetStartMonoNs(), FirstTokenMonoNS: b.GetFirstTokenMonoNs(), EndMonoNS: b.GetEndMonoNs(),
		Requests: int(b.GetRequests()), InputTokens: int(b.GetInputTokens()), OutputTokens: int(b.GetOutputTokens()), Steps: int(b.GetSteps())}
}
