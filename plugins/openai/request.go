package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/clock"
)

// Error kinds of a failed request (sdk.RequestResult.ErrorKind).
const (
	KindHTTP4xx       = "http_4xx"
	KindHTTP429       = "http_429"
	KindHTTP5xx       = "http_5xx"
	KindTimeout       = "timeout"
	KindDroppedStream = "dropped_stream"
	KindConnect       = "connect"
	KindEngine        = "engine"
)

// How output tokens were counted (sdk.RequestResult.TokenCount).
const (
	CountServerIDs = "server_ids"
	CountUsage     = "usage"
	CountTokenizer = "tokenizer"
)

var errRequestTimeout = errors.New("request_timeout")

// chunk is one streamed event of /completions or /chat/completions.
type chunk struct {
	Choices []struct {
		Index int    `json:"index"`
		Text  string `json:"text"`
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
		TokenIDs     []int32 `json:"token_ids"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// onChunk sees each chunk that carries output, as it arrives (Serve's step events).
type onChunk func(monoNS int64, toks []sdk.StepToken)

// body builds the request body of p; ids is what was sent as the prompt (nil for text).
func (s *session) body(p sdk.Prompt, dec sdk.Decoding, text string, ids []int32) map[string]any {
	b := map[string]any{
		"model":          s.model,
		"max_tokens":     dec.MaxNewTokens,
		"stream":         true,
		"stream_options": map[string]any{"include_usage": true},
	}
	if s.api == APIChat {
		b["messages"] = []map[string]string{{"role": "user", "content": text}}
	} else if ids != nil {
		b["prompt"] = ids
	} else {
		b["prompt"] = text
	}
	if dec.Greedy {
		b["temperature"] = 0
	} else {
		if dec.Temperature > 0 {
			b["temperature"] = dec.Temperature
		}
		if dec.TopP > 0 && dec.TopP < 1 {
			b["top_p"] = dec.TopP
		}
		if dec.TopK > 0 {
			b["top_k"] = dec.TopK // vLLM extension
		}
		if dec.Seed != 0 {
			b["seed"] = int64(dec.Seed & (1<<63 - 1))
		}
	}
	if dec.IgnoreEOS {
		b["ignore_eos"] = true // vLLM extension
	}
	if s.returnIDs {
		b["return_token_ids"] = true // vLLM extension
	}
	return b
}

// finishReason maps the server's finish reason: "stop" (an end-of-sequence token or a stop
// string) is "eos", "length" stays; anything else is kept as the server wrote it.
func finishReason(s string) string {
	if s == "stop" {
		return "eos"
	}
	return s
}

// do runs one request to its end and returns its result; it never returns an error: a failure
// is a result with FinishReason "error" (or "cancelled" once ctx ends).
func (s *session) do(ctx context.Context, p sdk.Prompt, index int, dec sdk.Decoding, see onChunk) sdk.RequestResult {
	r := sdk.RequestResult{ID: p.ID, Index: index}
	fail := func(kind, msg string) sdk.RequestResult {
		r.FinishReason, r.ErrorKind, r.Error = "error", kind, s.c.scrub(msg)
		if r.StartMonoNS == 0 {
			r.StartMonoNS = clock.Mono()
		}
		return r
	}
	var ids []int32
	text := p.Text
	if len(p.IDs) > 0 && (s.api == APICompletions || text == "") {
		ids = p.IDs
		if n := dec.MaxInputTokens; n > 0 && len(ids) > n {
			ids, r.Truncated = ids[len(ids)-n:], true
		}
	}
	if s.api == APIChat && text == "" {
		if len(ids) == 0 || s.tk == nil {
			return fail(KindEngine, "api = \"chat\" needs the prompt's text, and this prompt has only token ids and no tokenizer to decode them")
		}
		txt, err := s.tk.Decode(ctx, [][]int32{ids})
		if err != nil {
			return fail(KindEngine, "decode the prompt's ids for api = \"chat\": "+err.Error())
		}
		text = txt[0]
	}
	if s.api == APIChat {
		ids = nil // counted by the server
	}
	rctx, cancel := context.WithTimeoutCause(ctx, s.c.timeout, errRequestTimeout)
	defer cancel()
	path := "/completions"
	if s.api == APIChat {
		path = "/chat/completions"
	}
	req, err := s.c.newRequest(rctx, http.MethodPost, s.c.base+path, s.body(p, dec, text, ids))
	if err != nil {
		return fail(KindEngine, err.Error())
	}
	req.Header.Set("Accept", "text/event-stream")
	// timedOut says rctx ended on request_timeout (and not because ctx ended).
	timedOut := func() bool { return ctx.Err() == nil && context.Cause(rctx) == errRequestTimeout }
	timeoutMsg := func(during string) string {
		return fmt.Sprintf("no end of the request within %s = %s (%s)", KeyRequestTimeout, s.c.timeout, during)
	}

	r.StartMonoNS = clock.Mono()
	resp, err := s.c.http.Do(req)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			r.FinishReason = "cancelled"
			return r
		case timedOut():
			return fail(KindTimeout, timeoutMsg("waiting for the answer"))
		case errorsIsTimeout(err):
			return fail(KindTimeout, err.Error())
		}
		// No HTTP answer: refused, unreachable, or the connection closed before the status line.
		return fail(KindConnect, err.Error())
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		kind := KindHTTP4xx
		switch {
		case resp.StatusCode == http.StatusTooManyRequests:
			kind = KindHTTP429
		case resp.StatusCode >= 500:
			kind = KindHTTP5xx
		}
		return fail(kind, fmt.Sprintf("HTTP %d from %s: %s", resp.StatusCode, s.c.base+path, serverMessage(raw)))
	}

	var (
		out             []int32
		allIDs          = true // every output chunk carried its ids
		finish          string
		done            bool
		promptTokens    = -1
		completionCount = -1
		txt             []byte
	)
	sr := newSSEReader(resp.Body)
	for !done {
		data, ts, err := sr.next()
		if err != nil {
			switch {
			case ctx.Err() != nil:
				r.FinishReason = "cancelled"
				return s.finish(ctx, r, out, allIDs, txt, promptTokens, completionCount, dec, ids)
			case timedOut():
				r = s.partial(r, out, allIDs)
				return fail(KindTimeout, timeoutMsg("reading the stream"))
			}
			if finish != "" {
				break // the server closed the stream after the finish reason but before [DONE]
			}
			msg := "the stream ended without a finish reason or [DONE]"
			if !errors.Is(err, io.EOF) {
				msg += ": " + err.Error()
			}
			r = s.partial(r, out, allIDs)
			return fail(KindDroppedStream, msg)
		}
		if string(data) == "[DONE]" {
			done = true
			break
		}
		var c chunk
		if err := json.Unmarshal(data, &c); err != nil {
			r = s.partial(r, out, allIDs)
			return fail(KindDroppedStream, fmt.Sprintf("a stream event is not JSON: %v: %s", err, clip(string(data))))
		}
		if len(c.Error) > 0 && string(c.Error) != "null" {
			r = s.partial(r, out, allIDs)
			return fail(streamErrorKind(c.Error), "the server reported an error in the stream: "+serverMessage(data))
		}
		if c.Usage != nil {
			promptTokens, completionCount = c.Usage.PromptTokens, c.Usage.CompletionTokens
		}
		for _, ch := range c.Choices {
			if ch.Index != 0 {
				continue
			}
			piece := ch.Text
			if s.api == APIChat {
				piece = ch.Delta.Content
			}
			if piece != "" || len(ch.TokenIDs) > 0 {
				r.ChunkMonoNS = append(r.ChunkMonoNS, ts)
				if len(ch.TokenIDs) == 0 {
					allIDs = false
				}
				out = append(out, ch.TokenIDs...)
				for range ch.TokenIDs {
					r.TokenMonoNS = append(r.TokenMonoNS, ts)
				}
				txt = append(txt, piece...)
				if see != nil {
					see(ts, stepTokens(p.ID, ch.TokenIDs, piece))
				}
			}
			if ch.FinishReason != nil && *ch.FinishReason != "" {
				finish = *ch.FinishReason
			}
		}
	}
	if finish == "" {
		r = s.partial(r, out, allIDs)
		return fail(KindDroppedStream, "the stream sent [DONE] without a finish reason")
	}
	r.FinishReason = finishReason(finish)
	return s.finish(ctx, r, out, allIDs, txt, promptTokens, completionCount, dec, ids)
}

// partial keeps what a failed or cancelled request received: its ids when every chunk had them.
func (s *session) partial(r sdk.RequestResult, out []int32, allIDs bool) sdk.RequestResult {
	if allIDs && len(out) > 0 {
		r.OutputIDs, r.TokenCount = out, CountServerIDs
	} else {
		r.OutputIDs, r.TokenMonoNS = nil, nil
	}
	return r
}

// finish counts the output and input tokens of a request that ended (finished or cancelled):
// the server's ids when every output chunk carried them, else usage's count, else the
// tokenizer's count of the returned text. Token arrival times are kept when the count of tokens
// per chunk is known: ids per chunk, or as many tokens as chunks (one token per chunk).
func (s *session) finish(ctx context.Context, r sdk.RequestResult, out []int32, allIDs bool, txt []byte, promptTokens, completion int, dec sdk.Decoding, sent []int32) sdk.RequestResult {
	if dec.ReturnText {
		r.Text = string(txt)
	}
	switch {
	case promptTokens >= 0:
		r.InputTokens = promptTokens
	case sent != nil:
		r.InputTokens = len(sent)
	}
	chunks := len(r.ChunkMonoNS)
	switch {
	case allIDs && len(out) > 0:
		r.OutputIDs, r.TokenCount = out, CountServerIDs
		return r
	case completion >= 0:
		r.OutputIDs, r.OutputTokens, r.TokenCount = nil, completion, CountUsage
	case len(txt) == 0:
		r.OutputIDs, r.OutputTokens = nil, 0 // nothing arrived: nothing to count
	case s.tk != nil:
		// A cancelled context must not stop the count of what arrived.
		toks, err := s.tk.Encode(context.WithoutCancel(ctx), []string{string(txt)})
		if err != nil {
			return uncounted(r, s.c.scrub("the server reported neither token ids nor usage, and counting the returned text with the tokenizer failed: "+err.Error()))
		}
		r.OutputIDs, r.OutputTokens, r.TokenCount = nil, len(toks[0]), CountTokenizer
	default:
		return uncounted(r, fmt.Sprintf("the server reported neither token ids nor usage, and %s = %q leaves nothing to count the returned text with", KeyTokenizer, TokenizerNone))
	}
	if r.OutputTokens == chunks {
		r.TokenMonoNS = append([]int64(nil), r.ChunkMonoNS...)
	} else {
		r.TokenMonoNS = nil
	}
	return r
}

// uncounted is r when its output could not be counted: a failure of kind engine, unless the
// request was cancelled anyway.
func uncounted(r sdk.RequestResult, msg string) sdk.RequestResult {
	r.OutputIDs, r.TokenMonoNS = nil, nil
	if r.FinishReason != "cancelled" {
		r.FinishReason, r.ErrorKind = "error", KindEngine
	}
	r.Error = msg
	return r
}

func stepTokens(id string, ids []int32, text string) []sdk.StepToken {
	if len(ids) == 0 {
		return []sdk.StepToken{{ID: id, TokenID: -1, Text: text}}
	}
	out := make([]sdk.StepToken, len(ids))
	for i, t := range ids {
		out[i] = sdk.StepToken{ID: id, TokenID: t}
	}
	out[0].Text = text
	return out
}

// streamErrorKind classifies an error object sent inside a stream by its code.
func streamErrorKind(raw json.RawMessage) string {
	var e struct {
		Code json.RawMessage `json:"code"`
	}
	if json.Unmarshal(raw, &e) == nil && len(e.Code) > 0 {
		var s string
		if json.Unmarshal(e.Code, &s) != nil {
			s = string(e.Code)
		}
		if n, err := strconv.Atoi(s); err == nil {
			switch {
			case n == http.StatusTooManyRequests:
				return KindHTTP429
			case n >= 400 && n < 500:
				return KindHTTP4xx
			}
		}
	}
	return KindHTTP5xx
}
