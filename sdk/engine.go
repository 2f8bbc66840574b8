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
	// Endpoint is, for an engine that sends the work to a server, the server's base URL; Remote
	// says the server is on another machine, so this machine's meters do not see its work; Served
	// holds what the server reported about the model (its id, owner, context length…).
	Endpoint string
	Remote   bool
	Served   map[string]string
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
	FinishReason string  // "eos", "length", "cancelled" or "error"
	Truncated    bool    // the prompt was truncated to MaxInputTokens

	// ErrorKind and Error are set when the request failed (FinishReason "error"): a short kind
	// ("http_5xx", "http_429", "http_4xx", "timeout", "dropped_stream", "connect", "engine") and
	// the message. A failed request is reported, not returned as an error: the host counts
	// failures by kind and decides whether the run is still valid.
	ErrorKind string
	Error     string
	// OutputTokens counts the output tokens when OutputIDs does not hold them all (a served model
	// that reports only a count); 0 means len(OutputIDs).
	OutputTokens int
	// TokenCount says how the output tokens were counted: "" (the engine's own ids),
	// "server_ids", "usage" (the server's count) or "tokenizer" (the loader's tokenizer on the
	// returned text).
	TokenCount string
	// ChunkMonoNS is the arrival of each streamed chunk, for an engine that reads a stream whose
	// chunks may hold several tokens.
	ChunkMonoNS []int64
	// MeanBatch is the mean size of the running batch over the passes that produced this
	// request's tokens (continuous batching); 0 when not known.
	MeanBatch float64
}

// Tokens returns the number of output tokens: OutputTokens when set, else len(OutputIDs).
func (r RequestResult) Tokens() int {
	if r.OutputTokens > 0 {
		return r.OutputTokens
	}
	return len(r.OutputIDs)
}

// ContinuousEngine is an Engine that also runs requests as they come (continuous batching).
// Engines that implement it serve `arrival = "constant"|"poisson"` workloads and `lemctl serve`
// step by step; for the others the host batches the waiting requests into static Generate calls.
type ContinuousEngine interface {
	Engine
	// Serve runs every request received from in: a submitted request joins the running batch at
	// the next step boundary and leaves it when it finishes; a cancel drops it there. Serve calls
	// emit once per request with its result (Done) and, when opts.StepEvents is set, once per
	// forward pass with every running request's new token. It returns nil after in is closed and
	// every request it received is done, or ctx's error when ctx ends. If emit returns an error,
	// Serve stops and returns it. Serve never calls emit concurrently, and is not called twice at
	// once.
	Serve(ctx context.Context, opts ServeOptions, in <-chan ServeRequest, emit func(ServeEvent) error) error
}

// ServeOptions configure one Serve call.
type ServeOptions struct {
	// StepEvents asks for one Step event per forward pass (a server streaming tokens to its
	// clients); without it Serve emits only Done events, one per request.
	StepEvents bool
}

// ServeRequest is a request to run (Prompt.ID unique among the requests not yet done), or, with
// Cancel set, the ID of one to drop.
type ServeRequest struct {
	Prompt   Prompt
	Decoding Decoding
	Cancel   bool
}

// ServeEvent is one forward pass's tokens (Step) or one finished request (Done).
type ServeEvent struct {
	Step *ServeStep
	Done *RequestResult
}

// ServeStep is one forward pass of the running batch.
type ServeStep struct {
	MonoNS    int64
	BatchSize int // requests in the running batch during the pass
	Tokens    []StepToken
}

// StepToken is one request's new token in a pass; Text is the text it adds to the output when
// the request's decoding asked for text (empty while a multi-byte character is incomplete).
type StepToken struct {
	ID      string
	TokenID int32
	Text    string
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
