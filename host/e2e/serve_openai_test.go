package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The official OpenAI Node client the conformance test drives `lemctl serve` with (no
// dependencies of its own), and the sha256 of its npm tarball.
const (
	openaiNodePkg    = "openai@5.12.0"
	openaiNodeSHA256 = "41b74c3e15fe5a45acdfe435cf9e22faeb552400475277d90d564ce5573680c3"
)

// openaiNodeClient returns a directory whose node_modules holds the openai package, fetched once
// with `npm pack` into the user's cache and checked against its sha256; it skips the test when
// node or npm is missing or the registry cannot be reached (and fails instead under CI=true:
// .ci/run installs node and npm and reaches the npm registry).
func openaiNodeClient(t *testing.T) string {
	t.Helper()
	skip := t.Skipf
	if os.Getenv("CI") == "true" {
		skip = t.Fatalf
	}
	for _, tool := range []string{"node", "npm", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			skip("the OpenAI Node client conformance check needs %s, which is not installed", tool)
		}
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	base := filepath.Join(cache, "lemctl-e2e", strings.ReplaceAll(openaiNodePkg, "@", "-"))
	pkg := filepath.Join(base, "node_modules", "openai")
	if _, err := os.Stat(filepath.Join(pkg, "package.json")); err == nil {
		return base
	}
	work := t.TempDir()
	cmd := exec.Command("npm", "pack", "--silent", openaiNodePkg)
	cmd.Dir = work
	out, err := cmd.Output()
	if err != nil {
		skip("npm pack %s failed (no registry?): %v", openaiNodePkg, err)
	}
	tgz := filepath.Join(work, strings.TrimSpace(lastLine(string(out))))
	data, err := os.ReadFile(tgz)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != openaiNodeSHA256 {
		t.Fatalf("%s: sha256 %x, want %s", tgz, sum, openaiNodeSHA256)
	}
	tmp := filepath.Join(work, "x")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("tar", "xzf", tgz, "-C", tmp).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, b)
	}
	if err := os.MkdirAll(filepath.Dir(pkg), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(tmp, "package"), pkg); err != nil {
		t.Fatal(err)
	}
	return base
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// conformanceJS drives the server with the official client: completions and chat, whole and
// streamed (with usage), the model list, and an error.
const conformanceJS = `
import OpenAI from 'openai';
const [base, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL: base + '/v1', apiKey: 'unused', maxRetries: 0 });
const out = {};
const params = { model, max_tokens: 8, temperature: 0 };
const c = await client.completions.create({ ...params, prompt: 'Hello, my name is' });
out.completion = { text: c.choices[0].text, finish: c.choices[0].finish_reason, usage: c.usage };
let text = '', usage = null, chunks = 0;
for await (const ch of await client.completions.create({ ...params, prompt: 'Hello, my name is', stream: true, stream_options: { include_usage: true } })) {
  if (ch.choices.length) { text += ch.choices[0].text; chunks++; }
  if (ch.usage) usage = ch.usage;
}
out.completionStream = { text, usage, chunks };
const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi!' }];
const r = await client.chat.completions.create({ ...params, messages });
out.chat = { text: r.choices[0].message.content, role: r.choices[0].message.role, finish: r.choices[0].finish_reason, usage: r.usage };
text = ''; usage = null; chunks = 0;
for await (const ch of await client.chat.completions.create({ ...params, messages, stream: true, stream_options: { include_usage: true } })) {
  if (ch.choices.length && ch.choices[0].delta.content) { text += ch.choices[0].delta.content; chunks++; }
  if (ch.usage) usage = ch.usage;
}
out.chatStream = { text, usage, chunks };
out.models = (await client.models.list()).data.map(m => m.id);
try {
  await client.completions.create({ ...params, model: 'no-such-model', prompt: 'x' });
} catch (e) {
  out.error = { status: e.status, code: e.code, param: e.param, message: e.message };
}
console.log(JSON.stringify(out));
`

// TestServeOpenAINodeClient checks `lemctl serve` against the official OpenAI Node client.
func TestServeOpenAINodeClient(t *testing.T) {
	plugins := productPlugins(t, "onnx")
	base := openaiNodeClient(t)
	script := filepath.Join(base, "conformance.mjs")
	if err := os.WriteFile(script, []byte(conformanceJS), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, plugins, "synthetic:gpt2-tiny", "")
	cmd := exec.Command("node", script, s.url, "synthetic:gpt2-tiny")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.Output(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("the node client did not finish within 2 minutes")
	}
	if err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, stderr.String())
	}
	type usage struct {
		Prompt     int `json:"prompt_tokens"`
		Completion int `json:"completion_tokens"`
		Total      int `json:"total_tokens"`
	}
	type answer struct {
		Text   string `json:"text"`
		Role   string `json:"role"`
		Finish string `json:"finish"`
		Usage  *usage `json:"usage"`
		Chunks int    `json:"chunks"`
	}
	var got struct {
		Completion, CompletionStream, Chat, ChatStream answer
		Models                                         []string
		Error                                          *struct {
			Status  int    `json:"status"`
			Code    string `json:"code"`
			Param   string `json:"param"`
			Message string `json:"message"`
		}
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node output %q: %v", out, err)
	}
	for name, pair := range map[string][2]answer{"completions": {got.Completion, got.CompletionStream}, "chat": {got.Chat, got.ChatStream}} {
		whole, stream := pair[0], pair[1]
		if whole.Text == "" || whole.Text != stream.Text {
			t.Errorf("%s: whole %q, streamed %q: want the same greedy text", name, whole.Text, stream.Text)
		}
		for _, a := range pair {
			if a.Usage == nil || a.Usage.Completion != 8 || a.Usage.Total != a.Usage.Prompt+8 || a.Usage.Prompt < 1 {
				t.Errorf("%s: usage %+v, want 8 completion tokens", name, a.Usage)
			}
		}
		if whole.Finish != "length" {
			t.Errorf("%s: finish_reason %q", name, whole.Finish)
		}
		if stream.Chunks < 2 {
			t.Errorf("%s: %d streamed chunks with text: want one per token", name, stream.Chunks)
		}
	}
	if got.Chat.Role != "assistant" {
		t.Errorf("chat role %q", got.Chat.Role)
	}
	if len(got.Models) != 1 || got.Models[0] != "synthetic:gpt2-tiny" {
		t.Errorf("models %v", got.Models)
	}
	if e := got.Error; e == nil || e.Status != 404 || e.Code != "model_not_found" || e.Param != "model" {
		t.Errorf("an unknown model: %+v, want a 404 model_not_found on param model", e)
	}
}
