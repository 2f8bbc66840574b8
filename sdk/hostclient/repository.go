package hostclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/internal/wire"
	repositoryv1 "github.com/lemctl/lemctl/sdk/proto/lem/repository/v1"
)

func markerFromProto(m *repositoryv1.Marker) *sdk.Marker {
	return &sdk.Marker{Rank: int(m.GetRank()), SHA256: m.GetSha256(), Path: m.GetPath(), TimeUnixNS: m.GetTimeUnixNs()}
}

// repositoryClient is the host side of lem.repository.v1; it implements Repository.
type repositoryClient struct{ c repositoryv1.RepositoryClient }

var _ sdk.StrayLister = (*repositoryClient)(nil)

// ListStrays implements sdk.StrayLister; a plugin built before the RPC existed answers
// sdk.ErrUnimplemented.
func (r *repositoryClient) ListStrays(ctx context.Context, exp string) ([]sdk.Stray, error) {
	resp, err := r.c.ListStrays(ctx, &repositoryv1.ListRawRequest{Experiment: exp})
	if err != nil {
		return nil, fromStatus(err)
	}
	var out []sdk.Stray
	for _, st := range resp.GetStrays() {
		out = append(out, sdk.Stray{Path: st.GetPath(), Problem: st.GetProblem()})
	}
	return out, nil
}

type uploadStream interface {
	Send(*repositoryv1.Upload) error
	CloseAndRecv() (*repositoryv1.Stored, error)
}

func sendUpload(stream uploadStream, h *repositoryv1.UploadHeader, data []byte) (*sdk.Stored, error) {
	h.Size = int64(len(data))
	if err := stream.Send(&repositoryv1.Upload{Part: &repositoryv1.Upload_Header{Header: h}}); err != nil {
		_, rerr := stream.CloseAndRecv()
		return nil, fromStatus(firstErr(rerr, err))
	}
	for len(data) > 0 {
		n := min(len(data), wire.ChunkBytes)
		if err := stream.Send(&repositoryv1.Upload{Part: &repositoryv1.Upload_Data{Data: data[:n]}}); err != nil {
			_, rerr := stream.CloseAndRecv()
			return nil, fromStatus(firstErr(rerr, err))
		}
		data = data[n:]
	}
	st, err := stream.CloseAndRecv()
	if err != nil {
		return nil, fromStatus(err)
	}
	return &sdk.Stored{Path: st.GetPath(), Size: st.GetSize(), SHA256: st.GetSha256()}, nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil && !errors.Is(e, io.EOF) {
			return e
		}
	}
	return errs[len(errs)-1]
}

func (r *repositoryClient) SaveRaw(ctx context.Context, exp string, rank int, data []byte) (*sdk.Stored, error) {
	stream, err := r.c.SaveRaw(ctx)
	if err != nil {
		return nil, fromStatus(err)
	}
	return sendUpload(stream, &repositoryv1.UploadHeader{Experiment: exp, Rank: int32(rank)}, data)
}

func (r *repositoryClient) SaveAggregated(ctx context.Context, exp string, data []byte, overwrite bool) (*sdk.Stored, error) {
	stream, err := r.c.SaveAggregated(ctx)
	if err != nil {
		return nil, fromStatus(err)
	}
	return sendUpload(stream, &repositoryv1.UploadHeader{Experiment: exp, Overwrite: overwrite}, data)
}

func (r *repositoryClient) SaveManifest(ctx context.Context, exp string, data []byte) (*sdk.Stored, error) {
	stream, err := r.c.SaveManifest(ctx)
	if err != nil {
		return nil, fromStatus(err)
	}
	return sendUpload(stream, &repositoryv1.UploadHeader{Experiment: exp, Overwrite: true}, data)
}

func (r *repositoryClient) MarkComplete(ctx context.Context, exp string, rank int, sha string) (*sdk.Marker, error) {
	m, err := r.c.MarkComplete(ctx, &repositoryv1.MarkCompleteRequest{Experiment: exp, Rank: int32(rank), Sha256: sha})
	if err != nil {
		return nil, fromStatus(err)
	}
	return markerFromProto(m), nil
}

func (r *repositoryClient) ListRaw(ctx context.Context, exp string) ([]sdk.RawEntry, error) {
	resp, err := r.c.ListRaw(ctx, &repositoryv1.ListRawRequest{Experiment: exp})
	if err != nil {
		return nil, fromStatus(err)
	}
	var out []sdk.RawEntry
	for _, e := range resp.GetEntries() {
		re := sdk.RawEntry{Rank: int(e.GetRank()), Size: e.GetSize(), SHA256: e.GetSha256(), Path: e.GetPath(), MarkerProblem: e.GetMarkerProblem()}
		if e.GetMarker() != nil {
			re.Marker = markerFromProto(e.GetMarker())
		}
		out = append(out, re)
	}
	return out, nil
}

type chunkStream interface {
	Recv() (*repositoryv1.Chunk, error)
}

func receiveChunks(stream chunkStream, err error) ([]byte, error) {
	if err != nil {
		return nil, fromStatus(err)
	}
	var buf bytes.Buffer
	for {
		c, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return buf.Bytes(), nil
		}
		if err != nil {
			return nil, fromStatus(err)
		}
		if len(c.GetData()) > wire.ChunkBytes {
			return nil, fmt.Errorf("repository sent a chunk of %d bytes, more than %d: protocol violation", len(c.GetData()), wire.ChunkBytes)
		}
		buf.Write(c.GetData())
	}
}

func (r *repositoryClient) LoadRaw(ctx context.Context, exp string, rank int) ([]byte, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := r.c.LoadRaw(ctx, &repositoryv1.LoadRequest{Experiment: exp, Rank: int32(rank)})
	return receiveChunks(s, err)
}

func (r *repositoryClient) LoadAggregated(ctx context.Context, exp string) ([]byte, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := r.c.LoadAggregated(ctx, &repositoryv1.LoadRequest{Experiment: exp})
	return receiveChunks(s, err)
}

func (r *repositoryClient) LoadManifest(ctx context.Context, exp string) ([]byte, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := r.c.LoadManifest(ctx, &repositoryv1.LoadRequest{Experiment: exp})
	return receiveChunks(s, err)
}

func (r *repositoryClient) List(ctx context.Context) ([]sdk.Experiment, error) {
	resp, err := r.c.List(ctx, &repositoryv1.ListRequest{})
	if err != nil {
		return nil, fromStatus(err)
	}
	var out []sdk.Experiment
	for _, e := range resp.GetExperiments() {
		ex := sdk.Experiment{ID: e.GetId(), Aggregated: e.GetAggregated(), Manifest: e.GetManifest(), ModifiedUnixNS: e.GetModifiedUnixNs()}
		for _, r := range e.GetRawRanks() {
			ex.RawRanks = append(ex.RawRanks, int(r))
		}
		for _, r := range e.GetCompletedRanks() {
			ex.CompletedRanks = append(ex.CompletedRanks, int(r))
		}
		out = append(out, ex)
	}
	return out, nil
}
