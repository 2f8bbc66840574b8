// Package serve is the server behind `lemctl serve`: it exposes one loaded model of one engine
// plugin over the OpenAI HTTP API (/v1/models, /v1/completions, /v1/chat/completions, streamed
// as server-sent events or not), vLLM's /tokenize and /detokenize, and /metrics in the
// Prometheus text format.
//
// A Scheduler queues the requests and runs at most MaxBatch of them at once: through the
// engine's continuous batching (sdk.ContinuousEngine.Serve, requests join and leave the running
// batch at step boundaries) when the engine has it, else as static batches of the waiting
// requests through Generate. A client that goes away cancels its request.
//
// It never starts, configures or closes plugins (the command does), never measures energy and
// never writes results; it keeps no state in package variables (each Server has its own metrics
// registry).
package serve
