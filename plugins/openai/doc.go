// Package openai is lemctl's plugin for a model that a server already runs behind an
// OpenAI-compatible HTTP API (vLLM, lemctl serve, …). It serves two kinds:
//
//   - engine "openai": Load checks the model against GET {base_url}/models; Generate sends a static
//     batch's requests concurrently and Serve each request as it arrives, every one streamed
//     (server-sent events, stream_options.include_usage); each request's send time, every chunk's
//     arrival and, when the tokens per chunk are known, every token's arrival are read on the
//     shared monotonic clock (sdk/clock). A failed request (HTTP 4xx/429/5xx, timeout, a stream
//     that ends without a finish reason, no connection) is a result with FinishReason "error"
//     and an ErrorKind, never an error of the call: the host counts failures and decides.
//   - loader: a reference is the served model's name; Resolve asks the server what it serves and
//     returns an artifact of Format "served" without weights; Tokenize and Detokenize use the
//     tokenizer the user names (a model directory, a synthetic preset's GPT-2 vocabulary, or the
//     server's /tokenize and /detokenize).
//
// HTTP and server-sent events are read with net/http and a small line reader rather than the
// openai-go client: the measurement needs the instant each event's bytes are read (not when a
// typed decoder hands over an object), vLLM's extension fields in each choice (token_ids), the
// difference between a stream that finished and one that just stopped, the int-array prompt,
// and every HTTP status as it came, with no retry or middleware to switch off. That is about
// a hundred lines here and no new dependency.
//
// It must never put the API key anywhere but the Authorization header of its own requests (not in
// configuration, results, logs or error messages), never retry a request (a retry would hide a
// failure and distort its latency), and never run a model itself.
package openai
