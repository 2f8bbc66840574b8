package hostclient

import (
	"context"

	"github.com/lemctl/lemctl/sdk"
	loaderv1 "github.com/lemctl/lemctl/sdk/proto/lem/loader/v1"
)

// loaderClient is the host side of lem.loader.v1; it implements sdk.Loader.
type loaderClient struct{ c loaderv1.LoaderClient }

func (l *loaderClient) Resolve(ctx context.Context, ref string) (*sdk.Artifact, error) {
	resp, err := l.c.Resolve(ctx, &loaderv1.ResolveRequest{Reference: ref})
	if err != nil {
		return nil, fromStatus(err)
	}
	return artifactFromProto(resp.GetArtifact()), nil
}

func (l *loaderClient) Tokenize(ctx context.Context, ref string, texts []string) ([][]int32, error) {
	resp, err := l.c.Tokenize(ctx, &loaderv1.TokenizeRequest{Reference: ref, Texts: texts})
	if err != nil {
		return nil, fromStatus(err)
	}
	return idsFromProto(resp.GetIds()), nil
}

func (l *loaderClient) Detokenize(ctx context.Context, ref string, ids [][]int32) ([]string, error) {
	resp, err := l.c.Detokenize(ctx, &loaderv1.DetokenizeRequest{Reference: ref, Ids: idsToProto(ids)})
	if err != nil {
		return nil, fromStatus(err)
	}
	return resp.GetTexts(), nil
}

// Token ids and artifacts travel both ways, so both sides convert them in both directions;
// package sdk has the same four functions, and this package's tests round-trip every field.

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
func artifactToProto(a *sdk.Artifact) *loaderv1.Artifact {
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
func artifactFromProto(p *loaderv1.Artifact) *sdk.Artifact {
	if p == nil {
		return nil
	}
	return &sdk.Artifact{
		Reference: p.GetReference(), Path: p.GetPath(), Files: p.GetFiles(), Format: p.GetFormat(), SHA256: p.GetSha256(),
		Architecture: p.GetArchitecture(), DType: p.GetDtype(), Synthetic: p.GetSynthetic(),
		Parameters: p.GetParameters(), NonEmbeddingParameters: p.GetNonEmbeddingParameters(),
		FLOPs:  sdk.FLOPsCoefficients{PerToken: p.GetFlops().GetPerToken(), PerTokenPosition: p.GetFlops().GetPerTokenPosition()},
		Layers: int(p.GetLayers()), Hidden: int(p.GetHidden()), Heads: int(p.GetHeads()),
		KV:        sdk.KVLayout{Layers: int(p.GetKv().GetLayers()), KVHeads: int(p.GetKv().GetKvHeads()), HeadDim: int(p.GetKv().GetHeadDim())},
		VocabSize: int(p.GetVocabSize()), ContextLength: int(p.GetContextLength()),
		EOSTokenIDs: p.GetEosTokenIds(), BOSTokenID: p.GetBosTokenId(), PadTokenID: p.GetPadTokenId(),
		Tokenizer: sdk.TokenizerInfo{Kind: p.GetTokenizer().GetKind(), Files: p.GetTokenizer().GetFiles(), VocabSize: int(p.GetTokenizer().GetVocabSize())},
		Metadata:  p.GetMetadata(),
	}
}
