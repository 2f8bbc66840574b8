package sdk

import "context"

// Engine runs a model on one device. It times every token itself on the shared clock
// (clock.Mono) and reports once per finished request, never once per token.
type Engine interface {
	// Load opens the artifact on the device. Loading twice without Unload is an error.
	Load(ctx context.Context, req LoadRequest) (*LoadResult, error)
	// Warmup runs req.Batches batches and returns their timings, so the host can stop on a
	// latency coefficient of variation.
	Warmup(ctx context.Context, req WarmupRequest) ([]BatchTiming, error)
	// Generate runs one static batch. It calls emit once per finished request, in the order the
	// requests finish, and returns the batch timing after the last emit. If emit returns an
	// error, Generate stops and returns it.
	Generate(ctx context.Context, req GenerateRequest, emit func(RequestResult) error) (*BatchTiming, error)
	// Unload frees everything Load allocated. Unload without Load is not an error.
	Unload(ctx context.Context) error
}

// Device names where an engine runs.
type Device struct {
	// Kind is "cpu", or the accelerator's vendor as its energy meter reports it ("nvidia",
	// "amd", …). Engines also accept "cuda", the older name of "nvidia".
	Kind string
	// Index is the device's index as the worker sees it: 0 for an accelerator (its visibility
	// environment leaves it the only one visible), -1 for cpu.
	Index int
	UUID  string // the device's id as its meter reports it (a GPU UUID for nvidia); "" for cpu
}

// LoadRequest asks an engine to load an artifact.
type LoadRequest struct {
	Artifact Artifact
	Device   Device
	// Threads is the intra-op thread count the launcher gave this worker; 0 lets the engine's
	// configuration (or its default) decide.
	Threads int
	// CPUs lists the cores this worker is pinned to, when pinning is configured.
	CPUs []int
	// TokenIDsOnly says the host will send every prompt as token ids (tokenized by the
	// loader) and never ask for text back: an engine may skip loading its tokenizer.
	TokenIDsOnly bool
}

// LoadResult reports what loading cost.
type LoadResult struct {
	LoadNS            int64 // wall time of the load on the monotonic clock
	ResidentBytes     int64 // resident memory of the plugin process after loading
	ModelBytes        int64 // bytes of weights loaded
	ExecutionProvider string
	// RuntimeVersions names the runtime libraries, e.g. {"onnxruntime": "1.24.1"}.
	RuntimeVersions map[string]string
}

// Prompt is one request: text, or token ids (ids win when both are set).
type Prompt struct {
	ID   string
	Text string
	IDs  []int32
}

// Decoding are the generation parameters of a batch.
type Decoding struct {
	MaxNewTokens   int     // > 0
	MaxInputTokens int     // 0: the model's context minus MaxNewTokens; longer prompts are truncated from the left
	Greedy         bool    // argmax; when false, sample with Temperature, TopK, TopP and Seed
	Temperature    float64 // > 0 when sampling
	TopK           int     // 0 disables
	TopP           float64 // in (0, 1]; 1 disables
	Seed           uint64
	IgnoreEOS      bool // generate exactly MaxNewTokens tokens for every request
	ReturnText     bool // detokenize the output
}

// GenerateRequest is one static batch.
type GenerateRequest struct {
	Prompts  []Prompt
	Decoding Decoding
}

// WarmupRequest asks for Batches runs of the same batch.
type WarmupRequest struct {
	GenerateRequest
	Batches int
}

// RequestResult is one finished request.
type RequestResult struct {
	ID           string
	Index        int     // position of the prompt in the batch
	InputTokens  int     // real input tokens after truncation, never padding
	OutputIDs    []int32 // generated ids, EOS included once when generation stopped on it
	Text         string  // when Decoding.ReturnText
	StartMonoNS  int64   // when the request started (its batch started)
	TokenMonoNS  []int64 // arrival of each output token, one per OutputIDs entry
	FinishReason string  // "eos" or "length"
	Truncated    bool    // the prompt was truncated to MaxInputTokens
}

// BatchTiming is the timing of one batch on the monotonic clock. Prefill is [StartMonoNS,
// FirstTokenMonoNS], decode is [FirstTokenMonoNS, EndMonoNS].
type BatchTiming struct {
	StartMonoNS      int64
	FirstTokenMonoNS int64
	EndMonoNS        int64
	Requests         int
	InputTokens      int // real tokens, never padding
	OutputTokens     int
	Steps            int // forward passes after prefill
}
