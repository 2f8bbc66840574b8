package sdk

import "context"

// Repository stores results as exact bytes. Writes are atomic: a reader sees the old file or the
// new one, never a torn one. Experiment ids and ranks are validated by the repository: ids with
// path separators or "..", and negative ranks, are ErrInvalidArgument.
type Repository interface {
	// SaveRaw stores one worker's raw result. Overwriting an existing rank is ErrAlreadyExists.
	SaveRaw(ctx context.Context, experiment string, rank int, data []byte) (*Stored, error)
	// MarkComplete writes the completion marker of a rank after checking that sha256 matches
	// the stored bytes (else ErrFailedPrecondition).
	MarkComplete(ctx context.Context, experiment string, rank int, sha256 string) (*Marker, error)
	ListRaw(ctx context.Context, experiment string) ([]RawEntry, error)
	LoadRaw(ctx context.Context, experiment string, rank int) ([]byte, error)
	// SaveAggregated stores the aggregate; an existing one is replaced only when overwrite.
	SaveAggregated(ctx context.Context, experiment string, data []byte, overwrite bool) (*Stored, error)
	LoadAggregated(ctx context.Context, experiment string) ([]byte, error)
	// SaveManifest stores (and replaces) the run manifest.
	SaveManifest(ctx context.Context, experiment string, data []byte) (*Stored, error)
	LoadManifest(ctx context.Context, experiment string) ([]byte, error)
	List(ctx context.Context) ([]Experiment, error)
}

// Stored describes bytes a repository wrote.
type Stored struct {
	Path   string
	Size   int64
	SHA256 string
}

// Marker is a rank's completion marker.
type Marker struct {
	Rank       int
	SHA256     string // of the exact raw bytes stored
	Path       string // where the raw result is
	TimeUnixNS int64
}

// RawEntry is one stored raw result.
type RawEntry struct {
	Rank   int
	Size   int64
	SHA256 string  // of the bytes as stored now
	Marker *Marker // nil when the rank has no usable completion marker
	// Path is where the raw result is stored ("" when the repository has no such notion).
	Path string
	// MarkerProblem says why the rank's completion marker, which exists, cannot be used (it does
	// not parse, or names another rank), naming the marker; Marker is nil then. A repository
	// lists such a rank rather than failing the whole listing: one rank's problem stays its own.
	MarkerProblem string
}

// Stray is a name in an experiment's raw results that looks like a raw result or a completion
// marker without being one the repository reads: a non-canonical name (process_00.json), a
// temporary file an interrupted write left, a marker without a raw result.
type Stray struct {
	Path    string
	Problem string
}

// StrayLister is implemented by a repository that can list an experiment's strays, so that the
// aggregation reports them instead of ignoring them silently. The gRPC client implements it
// always; a plugin whose repository does not answers ErrUnimplemented.
type StrayLister interface {
	ListStrays(ctx context.Context, experiment string) ([]Stray, error)
}

// Experiment summarises what a repository holds for one experiment.
type Experiment struct {
	ID             string
	RawRanks       []int
	CompletedRanks []int
	Aggregated     bool
	Manifest       bool
	ModifiedUnixNS int64
}
