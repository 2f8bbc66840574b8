package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lemctl/lemctl/sdk"
)

// client talks to one server. It never retries.
type client struct {
	base    string // {…}/v1, no trailing slash
	key     string // never printed: see scrub
	timeout time.Duration
	http    *http.Client
}

// maxIdlePerHost keeps a connection per concurrent request alive between requests, so that a
// request's measured time never includes a TCP (or TLS) handshake once the first batch ran.
const maxIdlePerHost = 4096

func newClient(s Settings, base string) (*client, error) {
	key := ""
	if s.APIKeyEnv != "" {
		key = os.Getenv(s.APIKeyEnv)
		if key == "" {
			return nil, fmt.Errorf("%w: %s = %q: the environment variable %s is empty or not set (export the API key in it)", sdk.ErrFailedPrecondition, KeyAPIKeyEnv, s.APIKeyEnv, s.APIKeyEnv)
		}
	}
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          0, // no limit
		MaxIdleConnsPerHost:   maxIdlePerHost,
		IdleConnTimeout:       5 * time.Minute,
		TLSHandshakeTimeout:   30 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Compression would buffer a stream's small events; a server-sent event stream is sent
		// as is.
		DisableCompression: true,
	}
	return &client{base: base, key: key, timeout: s.RequestTimeout, http: &http.Client{Transport: t}}, nil
}

// close drops the idle connections.
func (c *client) close() {
	if c != nil {
		c.http.CloseIdleConnections()
	}
}

// scrub removes the API key from a message (a server may echo a header back).
func (c *client) scrub(s string) string {
	if c.key == "" {
		return s
	}
	return strings.ReplaceAll(s, c.key, "[api key]")
}

func (c *client) newRequest(ctx context.Context, method, url string, body any) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s: %v", sdk.ErrInvalidArgument, method, url, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	return req, nil
}

// callJSON sends one request and decodes a 200 reply into out. Errors name the URL and the
// status and wrap sdk.ErrUnavailable (no answer) or sdk.ErrFailedPrecondition (a refusal).
func (c *client) callJSON(ctx context.Context, method, url string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := c.newRequest(ctx, method, url, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return fmt.Errorf("%w: %s %s: no answer within %s (%s)", sdk.ErrUnavailable, method, url, c.timeout, KeyRequestTimeout)
		}
		return fmt.Errorf("%w: %s %s: %s", sdk.ErrUnavailable, method, url, c.scrub(err.Error()))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%w: %s %s: reading the answer: %s", sdk.ErrUnavailable, method, url, c.scrub(err.Error()))
	}
	if resp.StatusCode != http.StatusOK {
		sentinel := sdk.ErrFailedPrecondition
		if resp.StatusCode == http.StatusNotFound {
			sentinel = sdk.ErrNotFound
		}
		if resp.StatusCode >= 500 {
			sentinel = sdk.ErrUnavailable
		}
		hint := ""
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			hint = fmt.Sprintf(" (check the key in the environment variable %s names)", KeyAPIKeyEnv)
		}
		return fmt.Errorf("%w: %s %s: HTTP %d%s: %s", sentinel, method, url, resp.StatusCode, hint, c.scrub(serverMessage(raw)))
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%w: %s %s: the answer is not the JSON expected: %v", sdk.ErrFailedPrecondition, method, url, err)
	}
	return nil
}

// serverMessage is the message of an OpenAI-style error body, else the body's start.
func serverMessage(raw []byte) string {
	var e struct {
		Error json.RawMessage `json:"error"`
		// vLLM and FastAPI also answer {"message": …} or {"detail": …}.
		Message string          `json:"message"`
		Detail  json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(raw, &e) == nil {
		var inner struct {
			Message string `json:"message"`
		}
		var s string
		switch {
		case len(e.Error) > 0 && json.Unmarshal(e.Error, &inner) == nil && inner.Message != "":
			return clip(inner.Message)
		case len(e.Error) > 0 && json.Unmarshal(e.Error, &s) == nil && s != "":
			return clip(s)
		case e.Message != "":
			return clip(e.Message)
		case len(e.Detail) > 0:
			return clip(string(e.Detail))
		}
	}
	s := strings.TrimSpace(string(raw))
	if s == "" {
		return "(empty body)"
	}
	return clip(s)
}

func clip(s string) string {
	const max = 300
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// servedModel is one entry of GET /models.
type servedModel struct {
	ID          string          `json:"id"`
	Object      string          `json:"object"`
	OwnedBy     string          `json:"owned_by"`
	Root        string          `json:"root"`
	Parent      *string         `json:"parent"`
	MaxModelLen json.RawMessage `json:"max_model_len"`
	Created     json.Number     `json:"created"`
}

// served is what the server reports about m, for LoadResult.Served and Artifact.Metadata.
func (m servedModel) served() map[string]string {
	out := map[string]string{"id": m.ID}
	if m.OwnedBy != "" {
		out["owned_by"] = m.OwnedBy
	}
	if m.Root != "" {
		out["root"] = m.Root
	}
	if m.Parent != nil && *m.Parent != "" {
		out["parent"] = *m.Parent
	}
	if n := m.contextLength(); n > 0 {
		out["max_model_len"] = strconv.Itoa(n)
	}
	if m.Created != "" {
		out["created"] = m.Created.String()
	}
	return out
}

func (m servedModel) contextLength() int {
	var n int
	if len(m.MaxModelLen) > 0 && json.Unmarshal(m.MaxModelLen, &n) == nil && n > 0 {
		return n
	}
	return 0
}

// listModels returns what GET {base}/models lists.
func (c *client) listModels(ctx context.Context) ([]servedModel, error) {
	var list struct {
		Data []servedModel `json:"data"`
	}
	if err := c.callJSON(ctx, http.MethodGet, c.base+"/models", nil, &list); err != nil {
		return nil, fmt.Errorf("list the models %s = %q serves: %w", KeyBaseURL, c.base, err)
	}
	return list.Data, nil
}

// findModel returns the entry for name, or with name "" the only model listed.
func (c *client) findModel(ctx context.Context, name, key string) (servedModel, error) {
	models, err := c.listModels(ctx)
	if err != nil {
		return servedModel{}, err
	}
	ids := make([]string, len(models))
	for i, m := range models {
		ids[i] = m.ID
		if name != "" && m.ID == name {
			return m, nil
		}
	}
	sort.Strings(ids)
	switch {
	case len(models) == 0:
		return servedModel{}, fmt.Errorf("%w: %s = %q lists no model at %s/models", sdk.ErrNotFound, KeyBaseURL, c.base, c.base)
	case name == "" && len(models) == 1:
		return models[0], nil
	case name == "":
		return servedModel{}, fmt.Errorf("%w: %s = %q serves %d models %s: name one with %s", sdk.ErrInvalidArgument, KeyBaseURL, c.base, len(models), quoteList(ids), key)
	}
	return servedModel{}, fmt.Errorf("%w: %s %q is not served at %s = %q (it lists %s)", sdk.ErrNotFound, key, name, KeyBaseURL, c.base, quoteList(ids))
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// serverVersion returns what GET {root}/version reports (vLLM: {"version": …}), or "".
func (c *client) serverVersion(ctx context.Context) string {
	var v struct {
		Version string `json:"version"`
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.callJSON(ctx, http.MethodGet, rootURL(c.base)+"/version", nil, &v); err != nil {
		return ""
	}
	return v.Version
}

// isLocal reports whether host (a name or address) is this machine: loopback, or an address of
// one of its interfaces.
func isLocal(ctx context.Context, host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = []net.IP{ip}
	} else {
		addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			return false
		}
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	local, _ := net.InterfaceAddrs()
	for _, ip := range ips {
		if ip.IsLoopback() || ip.IsUnspecified() {
			return true
		}
		for _, a := range local {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return true
			}
		}
	}
	return false
}

// errorsIsTimeout reports a network timeout.
func errorsIsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
