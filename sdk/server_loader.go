package sdk

import (
	"context"

	"google.golang.org/grpc"

	"github.com/lemctl/lemctl/sdk/internal/wire"
	loaderv1 "github.com/lemctl/lemctl/sdk/proto/lem/loader/v1"
)

func loaderService(impl Loader) *wire.Service {
	return &wire.Service{Register: func(s grpc.ServiceRegistrar) { loaderv1.RegisterLoaderServer(s, &loaderServer{impl: impl}) }}
}

type loaderServer struct {
	loaderv1.UnimplementedLoaderServer
	impl Loader
}

func (s *loaderServer) Resolve(ctx context.Context, req *loaderv1.ResolveRequest) (*loaderv1.ResolveResponse, error) {
	a, err := s.impl.Resolve(ctx, req.GetReference())
	if err != nil {
		return nil, toStatus(err)
	}
	return &loaderv1.ResolveResponse{Artifact: artifactToProto(a)}, nil
}

func (s *loaderServer) Tokenize(ctx context.Context, req *loaderv1.TokenizeRequest) (*loaderv1.TokenizeResponse, error) {
	ids, err := s.impl.Tokenize(ctx, req.GetReference(), req.GetTexts())
	if err != nil {
		return nil, toStatus(err)
	}
	return &loaderv1.TokenizeResponse{Ids: idsToProto(ids)}, nil
}

func (s *loaderServer) Detokenize(ctx context.Context, req *loaderv1.DetokenizeRequest) (*loaderv1.DetokenizeResponse, error) {
	texts, err := s.impl.Detokenize(ctx, req.GetReference(), idsFromProto(req.GetIds()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &loaderv1.DetokenizeResponse{Texts: texts}, nil
}

// Token ids and artifacts travel both ways, so both sides convert them in both directions;
// sdk/hostclient has the same four functions, and its tests round-trip every field of both.

func idsToProto(ids [][]int32) []*loaderv1.TokenIDs {
	out := make([]*loaderv1.TokenIDs, len(ids))
	for i, s := range ids {
		out[i] = &loaderv1.TokenIDs{Ids: s}
	}
	return out
}

func idsFromProto(ids []*loaderv1.TokenIDs) [][]int32 {
	out := make([][]int32, len(ids))
	for i, s := range ids {
		out[i] = s.GetIds()
	}
	return out
}

// artifactToProto converts an artifact for the wire (nil stays nil).
func artifactToProto(a *Artifact) *loaderv1.Artifact {
	if a == nil {
		return nil
	}
	return &loaderv1.Artifact{
		Reference: a.Reference, Path: a.Path, Files: a.Files, Format: a.Format, Sha256: a.SHA256,
		Architecture: a.Architecture, Dtype: a.DType, Synthetic: a.Synthetic,
		Parameters: a.Parameters, NonEmbeddingParameters: a.NonEmbeddingParameters,
		Flops:  &loaderv1.FLOPsCoefficients{PerToken: a.FLOPs.PerToken, PerTokenPosition: a.FLOPs.PerTokenPosition},
		Layers: int32(a.Layers), Hidden: int32(a.Hidden), Heads: int32(a.Heads),
		Kv:        &loaderv1.KVLayout{Layers: int32(a.KV.Layers), KvHeads: int32(a.KV.KVHeads), HeadDim: int32(a.KV.HeadDim)},
		VocabSize: int32(a.VocabSize), ContextLength: int32(a.ContextLength),
		EosTokenIds: a.EOSTokenIDs, BosTokenId: a.BOSTokenID, PadTokenId: a.PadTokenID,
		Tokenizer: &loaderv1.TokenizerInfo{Kind: a.Tokenizer.Kind, Files: a.Tokenizer.Files, VocabSize: int32(a.Tokenizer.VocabSize)},
		Metadata:  a.Metadata,
	}
}

// artifactFromProto converts an artifact from the wire (nil stays nil).
func artifactFromProto(p *loaderv1.Artifact) *Artifact {
	if p == nil {
		return nil
	}
	return &Artifact{
		Reference: p.GetReference(), Path: p.GetPath(), Files: p.GetFiles(), Format: p.GetFormat(), SHA256: p.GetSha256(),
		Architecture: p.GetArchitecture(), DType: p.GetDtype(), Synthetic: p.GetSynthetic(),
		Parameters: p.GetParameters(), NonEmbeddingParameters: p.GetNonEmbeddingParameters(),
		FLOPs:  FLOPsCoefficients{PerToken: p.GetFlops().GetPerToken(), PerTokenPosition: p.GetFlops().GetPerTokenPosition()},
		Layers: int(p.GetLayers()), Hidden: int(p.GetHidden()), Heads: int(p.GetHeads()),
		KV:        KVLayout{Layers: int(p.GetKv().GetLayers()), KVHeads: int(p.GetKv().GetKvHeads()), HeadDim: int(p.GetKv().GetHeadDim())},
		VocabSize: int(p.GetVocabSize()), ContextLength: int(p.GetContextLength()),
		EOSTokenIDs: p.GetEosTokenIds(), BOSTokenID: p.GetBosTokenId(), PadTokenID: p.GetPadTokenId(),
		Tokenizer: TokenizerInfo{Kind: p.GetTokenizer().GetKind(), Files: p.GetTokenizer().GetFiles(), VocabSize: int(p.GetTokenizer().GetVocabSize())},
		Metadata:  p.GetMetadata(),
	}
}
