package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// apiError is an OpenAI error answer: {"error": {message, type, param, code}} with its status.
type apiError struct {
	Status  int     `json:"-"`
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func (e *apiError) Error() string { return e.Message }

func strp(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// badParam is a 400 naming the parameter.
func badParam(param, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: strp(param), Message: fmt.Sprintf(format, args...)}
}

func notFound(code, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Code: strp(code), Param: strp("model"), Message: fmt.Sprintf(format, args...)}
}

func serverError(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusInternalServerError, Type: "server_error", Message: fmt.Sprintf(format, args...)}
}

func statusLabel(status int) string { return strconv.Itoa(status) }

// streamOptions is stream_options.
type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// sampling are the parameters completions and chat share.
type sampling struct {
	Model          string          `json:"model"`
	MaxTokens      *int            `json:"max_tokens"`
	Temperature    *float64        `json:"temperature"`
	TopP           *float64        `json:"top_p"`
	TopK           *int            `json:"top_k"` // vLLM extension
	Seed           *int64          `json:"seed"`
	N              *int            `json:"n"`
	Stream         bool            `json:"stream"`
	StreamOptions  *streamOptions  `json:"stream_options"`
	Stop           json.RawMessage `json:"stop"`
	IgnoreEOS      bool            `json:"ignore_eos"`       // vLLM extension
	ReturnTokenIDs bool            `json:"return_token_ids"` // vLLM extension
	Logprobs       json.RawMessage `json:"logprobs"`
	PresencePen    *float64        `json:"presence_penalty"`
	FrequencyPen   *float64        `json:"frequency_penalty"`
	LogitBias      map[string]any  `json:"logit_bias"`
}

// completionRequest is POST /v1/completions.
type completionRequest struct {
	sampling
	Prompt json.RawMessage `json:"prompt"`
	Echo   bool            `json:"echo"`
	BestOf *int            `json:"best_of"`
	Suffix *string         `json:"suffix"`
}

// chatMessage is one message of a chat; Content is a string or an array of text parts.
type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// chatRequest is POST /v1/chat/completions.
type chatRequest struct {
	sampling
	Messages            []chatMessage `json:"messages"`
	MaxCompletionTokens *int          `json:"max_completion_tokens"`
	TopLogprobs         *int          `json:"top_logprobs"`
	Tools               []any         `json:"tools"`
}

// decodeJSON reads a JSON body into v; a malformed body is a 400.
func decodeJSON(r *http.Request, v any) *apiError {
	body := http.MaxBytesReader(nil, r.Body, 8<<20)
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return badParam("", "the request body is over %d bytes", mbe.Limit)
		}
		return badParam("", "the request body is not valid JSON for this endpoint: %v", err)
	}
	if dec.More() {
		return badParam("", "the request body holds more than one JSON value")
	}
	return nil
}

// checkUnsupported refuses the OpenAI parameters lemctl serve does not implement, when set to
// anything but their neutral value.
func (s *sampling) checkUnsupported() *apiError {
	switch {
	case s.N != nil && *s.N != 1:
		return badParam("n", "n = %d: lemctl serve returns one choice per request (n must be 1)", *s.N)
	case len(s.Stop) > 0 && !isNull(s.Stop) && !bytes.Equal(bytes.TrimSpace(s.Stop), []byte("[]")):
		return badParam("stop", "stop sequences are not supported by lemctl serve; generation ends at EOS or max_tokens")
	case len(s.Logprobs) > 0 && !isNull(s.Logprobs) && !bytes.Equal(bytes.TrimSpace(s.Logprobs), []byte("false")):
		return badParam("logprobs", "logprobs are not supported by lemctl serve")
	case s.PresencePen != nil && *s.PresencePen != 0:
		return badParam("presence_penalty", "presence_penalty is not supported by lemctl serve (must be 0)")
	case s.FrequencyPen != nil && *s.FrequencyPen != 0:
		return badParam("frequency_penalty", "frequency_penalty is not supported by lemctl serve (must be 0)")
	case len(s.LogitBias) > 0:
		return badParam("logit_bias", "logit_bias is not supported by lemctl serve")
	}
	return nil
}

func isNull(m json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(m), []byte("null")) }

// checkSampling validates temperature, top_p, top_k and seed.
func (s *sampling) checkSampling() *apiError {
	if t := s.Temperature; t != nil && (math.IsNaN(*t) || *t < 0 || *t > 2) {
		return badParam("temperature", "temperature %v must be in [0, 2] (0: greedy)", *t)
	}
	if p := s.TopP; p != nil && (math.IsNaN(*p) || *p <= 0 || *p > 1) {
		return badParam("top_p", "top_p %v must be in (0, 1]", *p)
	}
	if k := s.TopK; k != nil && *k < -1 {
		return badParam("top_k", "top_k %d must be -1 or 0 (off) or a positive number of tokens", *k)
	}
	if s.Seed != nil && *s.Seed < 0 {
		return badParam("seed", "seed %d must not be negative", *s.Seed)
	}
	return nil
}

// promptInput is a completion's prompt: text, or token ids.
type promptInput struct {
	text  string
	ids   []int32
	isIDs bool
}

// parsePrompt reads prompt as a string, an array of token ids, or an array holding one of
// either; several prompts in one request are refused.
func parsePrompt(raw json.RawMessage, vocab int) (promptInput, *apiError) {
	if len(raw) == 0 || isNull(raw) {
		return promptInput{}, badParam("prompt", "prompt is required: a string or an array of token ids")
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "" {
			return promptInput{}, badParam("prompt", "prompt is empty")
		}
		return promptInput{text: s}, nil
	}
	var arr []json.RawMessage
	if err := json.Unmarshal(raw, &arr); err != nil {
		return promptInput{}, badParam("prompt", "prompt must be a string or an array of token ids")
	}
	if len(arr) == 0 {
		return promptInput{}, badParam("prompt", "prompt is empty")
	}
	first := bytes.TrimSpace(arr[0])
	if len(first) > 0 && (first[0] == '"' || first[0] == '[') {
		if len(arr) > 1 {
			return promptInput{}, badParam("prompt", "prompt holds %d prompts: lemctl serve takes one prompt per request", len(arr))
		}
		return parsePrompt(arr[0], vocab)
	}
	ids := make([]int32, len(arr))
	for i, e := range arr {
		var n int64
		if err := json.Unmarshal(e, &n); err != nil || n < 0 || n > math.MaxInt32 || (vocab > 0 && n >= int64(vocab)) {
			valid := "a non-negative token id"
			if vocab > 0 {
				valid = fmt.Sprintf("a token id in [0, %d)", vocab)
			}
			return promptInput{}, badParam("prompt", "prompt[%d] = %s is not %s", i, strings.TrimSpace(string(e)), valid)
		}
		ids[i] = int32(n)
	}
	return promptInput{ids: ids, isIDs: true}, nil
}

// ChatTemplate renders messages for a model without a chat template of its own (the synthetic
// models have none): each message as "<role>: <content>\n", then "assistant:" for the reply.
func ChatTemplate(msgs []ChatTurn) string {
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString(m.Role)
		b.WriteString(": ")
		b.WriteString(m.Content)
		b.WriteString("\n")
	}
	b.WriteString("assistant:")
	return b.String()
}

// ChatTurn is one chat message as the template sees it.
type ChatTurn struct{ Role, Content string }

// parseMessages reads messages: role system, user, assistant, developer or tool; content a
// string or an array of {"type": "text", "text": …} parts.
func parseMessages(msgs []chatMessage) ([]ChatTurn, *apiError) {
	if len(msgs) == 0 {
		return nil, badParam("messages", "messages is required and must not be empty")
	}
	out := make([]ChatTurn, len(msgs))
	for i, m := range msgs {
		switch m.Role {
		case "system", "user", "assistant", "developer", "tool":
		default:
			return nil, badParam(fmt.Sprintf("messages[%d].role", i), "messages[%d].role %q: valid roles are system, developer, user, assistant, tool", i, m.Role)
		}
		var s string
		if len(m.Content) == 0 || isNull(m.Content) {
			s = ""
		} else if json.Unmarshal(m.Content, &s) != nil {
			var parts []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			}
			if err := json.Unmarshal(m.Content, &parts); err != nil {
				return nil, badParam(fmt.Sprintf("messages[%d].content", i), "messages[%d].content must be a string or an array of text parts", i)
			}
			var b strings.Builder
			for k, p := range parts {
				if p.Type != "text" {
					return nil, badParam(fmt.Sprintf("messages[%d].content[%d].type", i, k), "messages[%d].content[%d]: part type %q is not supported (only text)", i, k, p.Type)
				}
				b.WriteString(p.Text)
			}
			s = b.String()
		}
		out[i] = ChatTurn{Role: m.Role, Content: s}
	}
	return out, nil
}

// usage is the token count of a request.
type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func newUsage(prompt, completion int) *usage {
	return &usage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion}
}

// completionChoice is a choice of a completion (whole or chunk).
type completionChoice struct {
	Index          int     `json:"index"`
	Text           string  `json:"text"`
	Logprobs       any     `json:"logprobs"`
	FinishReason   *string `json:"finish_reason"`
	PromptTokenIDs []int32 `json:"prompt_token_ids,omitempty"`
	TokenIDs       []int32 `json:"token_ids,omitempty"`
}

// completionResponse is a completion, or one chunk of a streamed one.
type completionResponse struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []completionChoice `json:"choices"`
	Usage   *usage             `json:"usage,omitempty"`
}

// chatMessageOut is the assistant's message (whole) or delta (chunk).
type chatMessageOut struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

type chatChoice struct {
	Index          int             `json:"index"`
	Message        *chatMessageOut `json:"message,omitempty"`
	Delta          *chatMessageOut `json:"delta,omitempty"`
	Logprobs       any             `json:"logprobs"`
	FinishReason   *string         `json:"finish_reason"`
	PromptTokenIDs []int32         `json:"prompt_token_ids,omitempty"`
	TokenIDs       []int32         `json:"token_ids,omitempty"`
}

type chatResponse struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   *usage       `json:"usage,omitempty"`
}

// finishReason maps the engine's finish reason to OpenAI's.
func finishReason(engine string) string {
	switch engine {
	case "eos":
		return "stop"
	case "length":
		return "length"
	default:
		return engine
	}
}
