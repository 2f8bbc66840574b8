package generatecmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/cliutil/render"
	"github.com/lemctl/lemctl/host/config"
	"github.com/lemctl/lemctl/host/discovery"
	"github.com/lemctl/lemctl/host/echo"
	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/hostclient"
)

// DefaultPrompt is generated from when neither --prompt nor --ids is given.
const DefaultPrompt = "Hello, my name is"

// Options are the flags of `lemctl generate`.
type Options struct {
	F            *cliutil.Factory
	Model        string
	Plugin       string // loader plugin (and engine plugin unless EnginePlugin is set)
	EnginePlugin string
	Prompt       string
	IDs          string // space- or comma-separated token ids
	MaxNewTokens int
	MaxInput     int
	Batch        int
	Greedy       bool
	Temperature  float64
	TopK         int
	TopP         float64
	Seed         uint64
	IgnoreEOS    bool
	Device       string // cpu, KIND or KIND:N
	Threads      int
	Config       []string // KEY=VALUE for the plugin's Configure
	Output       string
}

// Result is what `lemctl generate --output json` prints.
type Result struct {
	Model    ModelInfo       `json:"model"`
	Engine   EngineInfo      `json:"engine"`
	Requests []RequestResult `json:"requests"`
	Batch    BatchResult     `json:"batch"`
}

// ModelInfo identifies the resolved model.
type ModelInfo struct {
	Ref          string `json:"ref"`
	SHA256       string `json:"sha256"`
	Architecture string `json:"architecture"`
	Parameters   int64  `json:"parameters"`
	Synthetic    bool   `json:"synthetic"`
}

// EngineInfo says where and how the model ran.
type EngineInfo struct {
	Plugin            string            `json:"plugin"`
	Version           string            `json:"version"`
	ExecutionProvider string            `json:"execution_provider"`
	RuntimeVersions   map[string]string `json:"runtime_versions"`
	LoadMS            float64           `json:"load_ms"`
	ResidentBytes     int64             `json:"resident_bytes"`
	ModelBytes        int64             `json:"model_bytes"`
}

// RequestResult is one request of the batch.
type RequestResult struct {
	ID           string  `json:"id"`
	InputTokens  int     `json:"input_tokens"`
	OutputTokens int     `json:"output_tokens"`
	OutputIDs    []int32 `json:"output_ids"`
	Text         string  `json:"text"`
	FinishReason string  `json:"finish_reason"`
	Truncated    bool    `json:"truncated"`
	TTFTMS       float64 `json:"ttft_ms"`
	// ITLMS is the mean inter-token latency; null with a single output token.
	ITLMS *float64 `json:"itl_ms"`
	E2EMS float64  `json:"e2e_ms"`
}

// BatchResult is the batch's timing: prefill is [start, first token], decode [first token, end].
type BatchResult struct {
	Requests     int     `json:"requests"`
	InputTokens  int     `json:"input_tokens"`
	OutputTokens int     `json:"output_tokens"`
	Steps        int     `json:"steps"`
	PrefillMS    float64 `json:"prefill_ms"`
	DecodeMS     float64 `json:"decode_ms"`
	E2EMS        float64 `json:"e2e_ms"`
	// OutputTokensPerS is output tokens over the whole batch; DecodeTokensPerS is the tokens
	// after each request's first over the decode interval (null without a decode step).
	OutputTokensPerS float64  `json:"output_tokens_per_s"`
	DecodeTokensPerS *float64 `json:"decode_tokens_per_s"`
}

// NewCommand builds `lemctl generate`.
func NewCommand(f *cliutil.Factory) *cobra.Command { return NewCmdGenerate(f, nil) }

// NewCmdGenerate builds `lemctl generate`; runF, when not nil, runs instead of generateRun
// (tests). The flags that exclude each other are checked before either.
func NewCmdGenerate(fa *cliutil.Factory, runF func(*Options) error) *cobra.Command {
	o := &Options{F: fa}
	cmd := &cobra.Command{
		Use:   "generate --model REF [--prompt TEXT | --ids \"1 2 3\"]",
		Short: "Generate from one prompt with the loader and engine plugins and print ids, text and latency",
		Long: `generate resolves --model with the loader plugin, loads it in the engine plugin, runs one
static batch (--batch copies of the prompt) and prints the generated ids and text, time to first
token, inter-token latency, end-to-end latency and tokens/s, as timed inside the engine.

Decoding is greedy unless --temperature is given; then it samples with --top-k, --top-p and
--seed. --plugin-config KEY=VALUE sets a key of the plugin's configuration (a JSON value, or
else a string), e.g. --plugin-config threads=4.`,
		Example: `  lemctl generate --model synthetic:gpt2-tiny --prompt "Hello, my name is"
  lemctl generate --model ./my-optimum-export --ids "15496 11" --max-new-tokens 32 --batch 4
  lemctl generate --model synthetic:llama-tiny --temperature 0.8 --top-p 0.9 --seed 7 --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			if f.Changed("greedy") && f.Changed("temperature") {
				return cliutil.Usagef("generate: --greedy and --temperature exclude each other")
			}
			if !o.Greedy && !f.Changed("temperature") {
				return cliutil.Usagef("generate: --greedy=false needs --temperature (sampling)")
			}
			o.Greedy = !f.Changed("temperature")
			if !f.Changed("temperature") && (f.Changed("top-k") || f.Changed("top-p") || f.Changed("seed")) {
				return cliutil.Usagef("generate: --top-k, --top-p and --seed need --temperature (sampling)")
			}
			if f.Changed("prompt") && f.Changed("ids") {
				return cliutil.Usagef("generate: give --prompt or --ids, not both")
			}
			if runF != nil {
				return runF(o)
			}
			return generateRun(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Model, "model", "m", "", "model reference: an optimum export directory or synthetic:<preset> (required)")
	f.StringVar(&o.Plugin, "plugin", "onnx", "loader plugin, also the engine unless --engine-plugin is set")
	f.StringVar(&o.EnginePlugin, "engine-plugin", "", "engine plugin (default: --plugin)")
	f.StringVarP(&o.Prompt, "prompt", "p", "", "prompt text (default \""+DefaultPrompt+"\")")
	f.StringVar(&o.IDs, "ids", "", "prompt as token ids, space- or comma-separated")
	f.IntVarP(&o.MaxNewTokens, "max-new-tokens", "n", 16, "tokens to generate at most")
	f.IntVar(&o.MaxInput, "max-input-tokens", 0, "truncate longer prompts from the left (0: the context minus --max-new-tokens)")
	f.IntVarP(&o.Batch, "batch", "b", 1, "copies of the prompt in the batch")
	f.BoolVar(&o.Greedy, "greedy", true, "argmax decoding (the default)")
	f.Float64Var(&o.Temperature, "temperature", 1, "sample with this temperature instead of decoding greedily")
	f.IntVar(&o.TopK, "top-k", 0, "sample from the k most likely tokens (0: all)")
	f.Float64Var(&o.TopP, "top-p", 1, "sample from the smallest set holding this share of the probability, in (0, 1]")
	f.Uint64Var(&o.Seed, "seed", 0, "sampling seed")
	f.BoolVar(&o.IgnoreEOS, "ignore-eos", false, "generate exactly --max-new-tokens tokens")
	f.StringVar(&o.Device, "device", "cpu", "cpu, or the engine's device kind (a vendor, e.g. nvidia) with an optional :N index")
	f.IntVar(&o.Threads, "threads", 0, "intra-op threads (0: the plugin's setting)")
	f.StringArrayVar(&o.Config, "plugin-config", nil, "KEY=VALUE of the plugin's configuration (repeatable)")
	render.OutputVar(cmd, &o.Output)
	return cmd
}

// generateRun runs `lemctl generate` with opts.
func generateRun(ctx context.Context, opts *Options) error {
	env, o := opts.F, *opts
	if err := render.CheckOutput(o.Output, render.FormatTable, render.FormatJSON); err != nil {
		return err
	}
	req, err := o.request()
	if err != nil {
		return cliutil.Usage(fmt.Errorf("generate: %w", err))
	}
	device, err := parseDevice(o.Device)
	if err != nil {
		return cliutil.Usage(fmt.Errorf("generate: %w", err))
	}
	table, err := parseConfig(o.Config)
	if err != nil {
		return cliutil.Usage(fmt.Errorf("generate: %w", err))
	}
	cat, err := env.Catalog(ctx, "")
	if err != nil {
		return classify(ctx, fmt.Errorf("generate: %w", err))
	}

	lc, err := open(ctx, cat, o.Plugin, sdk.KindLoader, table)
	if err != nil {
		return classify(ctx, err)
	}
	ec := lc
	if o.EnginePlugin != "" && o.EnginePlugin != o.Plugin {
		if ec, err = open(ctx, cat, o.EnginePlugin, sdk.KindEngine, table); err != nil {
			return classify(ctx, err)
		}
	} else if !lc.Info().Serves(sdk.KindEngine) {
		return cliutil.Usagef("generate: plugin %s serves %v, not engine; name an engine with --engine-plugin", echo.Quote(o.Plugin), lc.Info().Kinds)
	}
	res, err := generate(ctx, env, lc, ec, o, req, device)
	if err != nil {
		return classify(ctx, err)
	}
	if o.Output == render.FormatJSON {
		return render.JSON(env.Out, res)
	}
	return writeResult(env.Out, res)
}

// request builds the batch from the options.
func (o Options) request() (sdk.GenerateRequest, error) {
	var req sdk.GenerateRequest
	switch {
	case strings.TrimSpace(o.Model) == "":
		return req, errors.New("--model is required (an optimum export directory or synthetic:<preset>)")
	case o.Batch < 1:
		return req, fmt.Errorf("--batch %d must be at least 1", o.Batch)
	case o.MaxNewTokens < 1:
		return req, fmt.Errorf("--max-new-tokens %d must be at least 1", o.MaxNewTokens)
	case o.MaxInput < 0:
		return req, fmt.Errorf("--max-input-tokens %d must not be negative", o.MaxInput)
	case !o.Greedy && !(o.Temperature > 0):
		return req, fmt.Errorf("--temperature %g must be positive", o.Temperature)
	case !o.Greedy && !(o.TopP > 0 && o.TopP <= 1):
		return req, fmt.Errorf("--top-p %g must be in (0, 1]", o.TopP)
	case !o.Greedy && o.TopK < 0:
		return req, fmt.Errorf("--top-k %d must not be negative", o.TopK)
	}
	p := sdk.Prompt{Text: o.Prompt}
	if o.IDs != "" {
		fields := strings.FieldsFunc(o.IDs, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
		if len(fields) == 0 {
			return req, fmt.Errorf("--ids %s holds no ids", echo.Quote(o.IDs))
		}
		for _, s := range fields {
			id, err := strconv.ParseInt(s, 10, 32)
			if err != nil || id < 0 {
				return req, fmt.Errorf("--ids: %s is not a token id (a non-negative integer)", echo.Quote(s))
			}
			p.IDs = append(p.IDs, int32(id))
		}
	} else if p.Text == "" {
		p.Text = DefaultPrompt
	}
	for i := 0; i < o.Batch; i++ {
		q := p
		q.ID = strconv.Itoa(i)
		req.Prompts = append(req.Prompts, q)
	}
	req.Decoding = sdk.Decoding{MaxNewTokens: o.MaxNewTokens, MaxInputTokens: o.MaxInput, Greedy: o.Greedy, IgnoreEOS: o.IgnoreEOS, ReturnText: true}
	if !o.Greedy {
		req.Decoding.Temperature, req.Decoding.TopK, req.Decoding.TopP, req.Decoding.Seed = o.Temperature, o.TopK, o.TopP, o.Seed
	}
	return req, nil
}

// parseDevice reads "cpu", or KIND or KIND:N: an accelerator of the engine's device kind KIND
// (its vendor, e.g. nvidia; docs/protocol.md, "Devices") at index N as this process sees it
// (default 0). The host knows no vendor: which kinds an engine runs on is the engine's answer.
func parseDevice(s string) (sdk.Device, error) {
	kind, idx, hasIdx := strings.Cut(s, ":")
	if kind == "cpu" && !hasIdx {
		return sdk.Device{Kind: "cpu", Index: -1}, nil
	}
	valid := kind != "" && kind != "cpu"
	for _, r := range kind {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			valid = false
		}
	}
	n := 0
	if hasIdx {
		var err error
		if n, err = strconv.Atoi(idx); err != nil || n < 0 {
			valid = false
		}
	}
	if !valid {
		return sdk.Device{}, fmt.Errorf("--device %s: want cpu, or an engine's device kind (a lower-case vendor name such as nvidia) with an optional :N index", echo.Quote(s))
	}
	return sdk.Device{Kind: kind, Index: n}, nil
}

// parseConfig reads KEY=VALUE pairs; a VALUE that parses as JSON is that value, else a string.
func parseConfig(kvs []string) (map[string]any, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	table := map[string]any{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("--plugin-config %s: want KEY=VALUE", echo.Quote(kv))
		}
		var val any
		if err := json.Unmarshal([]byte(v), &val); err != nil {
			val = v
		}
		table[strings.TrimSpace(k)] = val
	}
	return table, nil
}

// open starts plugin name for kind and configures it with table (nil: the plugin's defaults).
func open(ctx context.Context, cat *discovery.Catalog, name string, kind sdk.Kind, table map[string]any) (*hostclient.Client, error) {
	c, err := cat.OpenConfigured(ctx, name, kind, table)
	if err != nil {
		if discovery.IsUsage(err) {
			return nil, cliutil.Usagef("generate: %v", err)
		}
		return nil, fmt.Errorf("generate: %w", err)
	}
	return c, nil
}

// generate resolves, loads, runs the batch and unloads.
func generate(ctx context.Context, env *cliutil.Factory, lc, ec *hostclient.Client, o Options, req sdk.GenerateRequest, device sdk.Device) (*Result, error) {
	a, err := lc.Loader().Resolve(ctx, o.Model)
	if err != nil {
		return nil, fmt.Errorf("generate: resolve %s: %w", o.Model, err)
	}
	if env.Logger != nil {
		env.Logger.Info("model resolved", "ref", a.Reference, "architecture", a.Architecture, "parameters", a.Parameters, "path", a.Path)
	}
	e := ec.Engine()
	lr, err := e.Load(ctx, sdk.LoadRequest{Artifact: *a, Device: device, Threads: o.Threads})
	if err != nil {
		return nil, fmt.Errorf("generate: load %s: %w", o.Model, err)
	}
	defer e.Unload(context.WithoutCancel(ctx))
	res := &Result{
		Model: ModelInfo{Ref: a.Reference, SHA256: a.SHA256, Architecture: a.Architecture, Parameters: a.Parameters, Synthetic: a.Synthetic},
		Engine: EngineInfo{Plugin: ec.Info().Name, Version: ec.Info().Version, ExecutionProvider: lr.ExecutionProvider,
			RuntimeVersions: lr.RuntimeVersions, LoadMS: ms(lr.LoadNS), ResidentBytes: lr.ResidentBytes, ModelBytes: lr.ModelBytes},
		Requests: make([]RequestResult, len(req.Prompts)),
	}
	bt, err := e.Generate(ctx, req, func(r sdk.RequestResult) error {
		if r.Index < 0 || r.Index >= len(res.Requests) {
			return fmt.Errorf("the engine answered for request index %d of a batch of %d", r.Index, len(res.Requests))
		}
		res.Requests[r.Index] = summarize(r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	res.Batch = BatchResult{Requests: bt.Requests, InputTokens: bt.InputTokens, OutputTokens: bt.OutputTokens, Steps: bt.Steps,
		PrefillMS: ms(bt.FirstTokenMonoNS - bt.StartMonoNS), DecodeMS: ms(bt.EndMonoNS - bt.FirstTokenMonoNS), E2EMS: ms(bt.EndMonoNS - bt.StartMonoNS)}
	if d := bt.EndMonoNS - bt.StartMonoNS; d > 0 {
		res.Batch.OutputTokensPerS = float64(bt.OutputTokens) / (float64(d) / 1e9)
	}
	if d := bt.EndMonoNS - bt.FirstTokenMonoNS; d > 0 && bt.Steps > 0 {
		v := float64(bt.OutputTokens-bt.Requests) / (float64(d) / 1e9)
		res.Batch.DecodeTokensPerS = &v
	}
	return res, nil
}

// summarize turns a request's token times into TTFT, mean ITL and E2E (docs/methodology.md).
func summarize(r sdk.RequestResult) RequestResult {
	out := RequestResult{ID: r.ID, InputTokens: r.InputTokens, OutputTokens: len(r.OutputIDs), OutputIDs: r.OutputIDs,
		Text: r.Text, FinishReason: r.FinishReason, Truncated: r.Truncated}
	if out.OutputIDs == nil {
		out.OutputIDs = []int32{}
	}
	if n := len(r.TokenMonoNS); n > 0 {
		out.TTFTMS = ms(r.TokenMonoNS[0] - r.StartMonoNS)
		out.E2EMS = ms(r.TokenMonoNS[n-1] - r.StartMonoNS)
		if n > 1 {
			v := ms(r.TokenMonoNS[n-1]-r.TokenMonoNS[0]) / float64(n-1)
			out.ITLMS = &v
		}
	}
	return out
}

func ms(ns int64) float64 { return math.Round(float64(ns)/1e3) / 1e3 }

// classify maps an error to its exit code: bad input or a plugin that is not installed is a
// usage error (2), an interrupt 130, anything else a failed run (1).
func classify(ctx context.Context, err error) error {
	var ee *cliutil.ExitError
	switch {
	case errors.As(err, &ee):
		return err
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		return cliutil.Exit(cliutil.ExitInterrupted, err)
	case errors.Is(err, sdk.ErrInvalidArgument), errors.Is(err, config.ErrPluginNotInstalled):
		return cliutil.Usage(err)
	}
	return cliutil.Failed(err)
}

// writeResult prints the table for humans.
func writeResult(w io.Writer, r *Result) error {
	tw := render.NewTabWriter(w)
	fmt.Fprintf(tw, "model\t%s (%s, %d parameters)\n", r.Model.Ref, r.Model.Architecture, r.Model.Parameters)
	var rt []string
	for k, v := range r.Engine.RuntimeVersions {
		rt = append(rt, k+" "+v)
	}
	sort.Strings(rt)
	fmt.Fprintf(tw, "engine\t%s %s on %s (%s); load %.1f ms, resident %.1f MiB, model %.1f MiB\n", r.Engine.Plugin, r.Engine.Version,
		r.Engine.ExecutionProvider, strings.Join(rt, ", "), r.Engine.LoadMS, float64(r.Engine.ResidentBytes)/(1<<20), float64(r.Engine.ModelBytes)/(1<<20))
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "REQUEST\tIN\tOUT\tFINISH\tTTFT ms\tITL ms\tE2E ms\tIDS\tTEXT")
	for _, q := range r.Requests {
		itl := "-"
		if q.ITLMS != nil {
			itl = fmt.Sprintf("%.2f", *q.ITLMS)
		}
		ids := make([]string, len(q.OutputIDs))
		for i, id := range q.OutputIDs {
			ids[i] = strconv.Itoa(int(id))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%.2f\t%s\t%.2f\t%s\t%q\n", q.ID, q.InputTokens, q.OutputTokens, q.FinishReason, q.TTFTMS, itl, q.E2EMS, strings.Join(ids, " "), q.Text)
	}
	fmt.Fprintln(tw)
	b := r.Batch
	decode := "-"
	if b.DecodeTokensPerS != nil {
		decode = fmt.Sprintf("%.1f", *b.DecodeTokensPerS)
	}
	fmt.Fprintf(tw, "batch\t%d requests, %d input / %d output tokens, %d decode steps\n", b.Requests, b.InputTokens, b.OutputTokens, b.Steps)
	fmt.Fprintf(tw, "time\tprefill %.2f ms, decode %.2f ms, end to end %.2f ms\n", b.PrefillMS, b.DecodeMS, b.E2EMS)
	fmt.Fprintf(tw, "throughput\t%.1f output tokens/s overall, %s tokens/s in decode\n", b.OutputTokensPerS, decode)
	return tw.Flush()
}
