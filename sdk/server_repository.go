package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"

	"github.com/lemctl/lemctl/sdk/internal/wire"
	repositoryv1 "github.com/lemctl/lemctl/sdk/proto/lem/repository/v1"
)

func repositoryService(impl Repository) *wire.Service {
	return &wire.Service{Register: func(s grpc.ServiceRegistrar) {
		repositoryv1.RegisterRepositoryServer(s, &repositoryServer{impl: impl})
	}}
}

type repositoryServer struct {
	repositoryv1.UnimplementedRepositoryServer
	impl Repository
}

// upload is a client stream of a header followed by data chunks.
type upload interface {
	Recv() (*repositoryv1.Upload, error)
	SendAndClose(*repositoryv1.Stored) error
}

func receiveUpload(stream upload) (*repositoryv1.UploadHeader, []byte, error) {
	first, err := stream.Recv()
	if err != nil {
		return nil, nil, err
	}
	h := first.GetHeader()
	if h == nil {
		return nil, nil, fmt.Errorf("upload did not start with a header: %w", ErrInvalidArgument)
	}
	var buf bytes.Buffer
	if h.GetSize() > 0 {
		buf.Grow(int(h.GetSize()))
	}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		d, ok := msg.GetPart().(*repositoryv1.Upload_Data)
		if !ok {
			return nil, nil, fmt.Errorf("upload carried a second header: %w", ErrInvalidArgument)
		}
		if len(d.Data) > wire.ChunkBytes {
			return nil, nil, fmt.Errorf("upload chunk of %d bytes exceeds %d: %w", len(d.Data), wire.ChunkBytes, ErrInvalidArgument)
		}
		buf.Write(d.Data)
	}
	if int64(buf.Len()) != h.GetSize() {
		return nil, nil, fmt.Errorf("upload announced %d bytes and carried %d: %w", h.GetSize(), buf.Len(), ErrInvalidArgument)
	}
	return h, buf.Bytes(), nil
}

func storedToProto(s *Stored) *repositoryv1.Stored {
	return &repositoryv1.Stored{Path: s.Path, Size: s.Size, Sha256: s.SHA256}
}

func (s *repositoryServer) SaveRaw(stream repositoryv1.Repository_SaveRawServer) error {
	h, data, err := receiveUpload(stream)
	if err != nil {
		return toStatus(err)
	}
	st, err := s.impl.SaveRaw(stream.Context(), h.GetExperiment(), int(h.GetRank()), data)
	if err != nil {
		return toStatus(err)
	}
	return stream.SendAndClose(storedToProto(st))
}

func (s *repositoryServer) SaveAggregated(stream repositoryv1.Repository_SaveAggregatedServer) error {
	h, data, err := receiveUpload(stream)
	if err != nil {
		return toStatus(err)
	}
	st, err := s.impl.SaveAggregated(stream.Context(), h.GetExperiment(), data, h.GetOverwrite())
	if err != nil {
		return toStatus(err)
	}
	return stream.SendAndClose(storedToProto(st))
}

func (s *repositoryServer) SaveManifest(stream repositoryv1.Repository_SaveManifestServer) error {
	h, data, err := receiveUpload(stream)
	if err != nil {
		return toStatus(err)
	}
	st, err := s.impl.SaveManifest(stream.Context(), h.GetExperiment(), data)
	if err != nil {
		return toStatus(err)
	}
	return stream.SendAndClose(storedToProto(st))
}

func (s *repositoryServer) MarkComplete(ctx context.Context, req *repositoryv1.MarkCompleteRequest) (*repositoryv1.Marker, error) {
	m, err := s.impl.MarkComplete(ctx, req.GetExperiment(), int(req.GetRank()), req.GetSha256())
	if err != nil {
		return nil, toStatus(err)
	}
	return markerToProto(m), nil
}

func (s *repositoryServer) ListRaw(ctx context.Context, req *repositoryv1.ListRawRequest) (*repositoryv1.ListRawResponse, error) {
	entries, err := s.impl.ListRaw(ctx, req.GetExperiment())
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &repositoryv1.ListRawResponse{}
	for _, e := range entries {
		pe := &repositoryv1.RawEntry{Rank: int32(e.Rank), Size: e.Size, Sha256: e.SHA256, Path: e.Path, MarkerProblem: e.MarkerProblem}
		if e.Marker != nil {
			pe.Marker = markerToProto(e.Marker)
		}
		resp.Entries = append(resp.Entries, pe)
	}
	return resp, nil
}

// ListStrays answers from the implementation when it is a StrayLister, else with no strays.
func (s *repositoryServer) ListStrays(ctx context.Context, req *repositoryv1.ListRawRequest) (*repositoryv1.ListStraysResponse, error) {
	resp := &repositoryv1.ListStraysResponse{}
	sl, ok := s.impl.(StrayLister)
	if !ok {
		return resp, nil
	}
	strays, err := sl.ListStrays(ctx, req.GetExperiment())
	if err != nil {
		return nil, toStatus(err)
	}
	for _, st := range strays {
		resp.Strays = append(resp.Strays, &repositoryv1.Stray{Path: st.Path, Problem: st.Problem})
	}
	return resp, nil
}

type chunkSender interface {
	Send(*repositoryv1.Chunk) error
}

func sendChunks(stream chunkSender, data []byte) error {
	if len(data) == 0 {
		return stream.Send(&repositoryv1.Chunk{})
	}
	for len(data) > 0 {
		n := min(len(data), wire.ChunkBytes)
		if err := stream.Send(&repositoryv1.Chunk{Data: data[:n]}); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

func (s *repositoryServer) LoadRaw(req *repositoryv1.LoadRequest, stream repositoryv1.Repository_LoadRawServer) error {
	data, err := s.impl.LoadRaw(stream.Context(), req.GetExperiment(), int(req.GetRank()))
	if err != nil {
		return toStatus(err)
	}
	return sendChunks(stream, data)
}

func (s *repositoryServer) LoadAggregated(req *repositoryv1.LoadRequest, stream repositoryv1.Repository_LoadAggregatedServer) error {
	data, err := s.impl.LoadAggregated(stream.Context(), req.GetExperiment())
	if err != nil {
		return toStatus(err)
	}
	return sendChunks(stream, data)
}

func (s *repositoryServer) LoadManifest(req *repositoryv1.LoadRequest, stream repositoryv1.Repository_LoadManifestServer) error {
	data, err := s.impl.LoadManifest(stream.Context(), req.GetExperiment())
	if err != nil {
		return toStatus(err)
	}
	return sendChunks(stream, data)
}

func (s *repositoryServer) List(ctx context.Context, _ *repositoryv1.ListRequest) (*repositoryv1.ListResponse, error) {
	exps, err := s.impl.List(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &repositoryv1.ListResponse{}
	for _, e := range exps {
		pe := &repositoryv1.Experiment{Id: e.ID, Aggregated: e.Aggregated, Manifest: e.Manifest, ModifiedUnixNs: e.ModifiedUnixNS}
		for _, r := range e.RawRanks {
			pe.RawRanks = append(pe.RawRanks, int32(r))
		}
		for _, r := range e.CompletedRanks {
			pe.CompletedRanks = append(pe.CompletedRanks, int32(r))
		}
		resp.Experiments = append(resp.Experiments, pe)
	}
	return resp, nil
}

func markerToProto(m *Marker) *repositoryv1.Marker {
	return &repositoryv1.Marker{Rank: int32(m.Rank), Sha256: m.SHA256, Path: m.Path, TimeUnixNs: m.TimeUnixNS}
}
