package resultscmd

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/cliutil/render"
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/study"
	"github.com/lemctl/lemctl/sdk"
)

// NewCommand builds `lemctl results` with its list, show and export subcommands.
func NewCommand(f *cliutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "results",
		Short: "List, show and export stored results (from --results-dir)",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(NewCmdList(f, nil), NewCmdShow(f, nil), NewCmdExport(f, nil))
	return cmd
}

// ListOptions are `results list`'s.
type ListOptions struct {
	F      *cliutil.Factory
	Output string
}

// NewCmdList builds `results list`; runF, when not nil, runs instead of listRun (tests).
func NewCmdList(f *cliutil.Factory, runF func(*ListOptions) error) *cobra.Command {
	opts := &ListOptions{F: f}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the experiments and studies in the results repository",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(opts)
			}
			return listRun(cmd.Context(), opts)
		},
	}
	render.OutputVar(cmd, &opts.Output)
	return cmd
}

func listRun(ctx context.Context, opts *ListOptions) error {
	f := opts.F
	repo, err := f.Repository(ctx)
	if err != nil {
		return err
	}
	exps, err := repo.List(ctx)
	if err != nil {
		return cliutil.Failed(fmt.Errorf("list results in %s: %w", f.ResultsDir, err))
	}
	out := []ListEntry{}
	for _, e := range exps {
		le := ListEntry{ID: e.ID, Kind: "experiment", RawRanks: nonNil(e.RawRanks), CompletedRanks: nonNil(e.CompletedRanks), Aggregated: e.Aggregated,
			Manifest: e.Manifest, ModifiedUnixNS: e.ModifiedUnixNS}
		if e.Manifest {
			le.State = loadRunState(ctx, repo, e.ID).State
		}
		if e.Aggregated {
			// The figures come from the aggregate; one that cannot be read is said on stderr.
			if _, a, err := loadAggregated(ctx, repo, e.ID); err != nil {
				fmt.Fprintf(f.Err, "warning: %v\n", err)
			} else {
				le.Model, le.TotalJ, le.JPerOutputToken = a.Model.Ref, a.Energy.TotalJ, a.Energy.JPerOutputToken
				le.Valid, le.Partial = &a.Validity.Valid, &a.Partial
			}
		}
		out = append(out, le)
	}
	studies, err := listStudies(f)
	if err != nil {
		return err
	}
	if opts.Output == render.FormatJSON {
		return render.JSON(f.Out, append(out, studies...))
	}
	if len(studies) > 0 {
		defer func() { _ = writeStudyList(f.Out, studies) }()
	}
	if len(exps) == 0 {
		_, err := fmt.Fprintf(f.Out, "no experiments in %s\n", f.ResultsDir)
		return err
	}
	rows := make([][]string, 0, len(out))
	for _, e := range out {
		rows = append(rows, []string{e.ID, orNA(e.State), orNA(e.Model), unit(e.TotalJ, 1, "J"), gnum(e.JPerOutputToken),
			yesPtr(e.Valid), yesPtr(e.Partial), strconv.Itoa(len(e.RawRanks)), strconv.Itoa(len(e.CompletedRanks)), yes(e.Aggregated), yes(e.Manifest), wall(e.ModifiedUnixNS)})
	}
	return render.Table(f.Out, []string{"EXPERIMENT", "STATE", "MODEL", "ENERGY", "J/TOKEN", "VALID", "PARTIAL", "RAW", "COMPLETED", "AGGREGATED", "MANIFEST", "MODIFIED"}, rows)
}

// ListEntry is one experiment of `results list`. The figures come from its aggregate: null (and
// "—" in the table) when it has none.
type ListEntry struct {
	ID string `json:"id"`
	// Kind is "experiment" or "study" (a study's entry has its state, points and cycles).
	Kind string `json:"kind"`
	// State is the run's state from its manifest ("" without one), "abandoned" for a run still
	// "running" whose lemctl is gone.
	State           string   `json:"state,omitempty"`
	Model           string   `json:"model"`
	TotalJ          *float64 `json:"total_j"`
	JPerOutputToken *float64 `json:"j_per_output_token"`
	Valid           *bool    `json:"valid"`
	Partial         *bool    `json:"partial"`
	RawRanks        []int    `json:"raw_ranks"`
	CompletedRanks  []int    `json:"completed_ranks"`
	Aggregated      bool     `json:"aggregated"`
	Manifest        bool     `json:"manifest"`
	ModifiedUnixNS  int64    `json:"modified_unix_ns"`
	// Points, Cycles and CompletedCycles describe a study (kind "study").
	Points          int `json:"points,omitempty"`
	Cycles          int `json:"cycles,omitempty"`
	CompletedCycles int `json:"completed_cycles,omitempty"`
}

// ShowOptions are `results show`'s.
type ShowOptions struct {
	F      *cliutil.Factory
	Exp    string
	Raw    bool
	Output string
}

// NewCmdShow builds `results show EXP`; runF, when not nil, runs instead of showRun (tests).
func NewCmdShow(f *cliutil.Factory, runF func(*ShowOptions) error) *cobra.Command {
	opts := &ShowOptions{F: f}
	cmd := &cobra.Command{
		Use:   "show EXP|STUDY",
		Short: "Show an experiment's aggregated result (or, with --raw, each worker's raw result), or a study's table",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Exp = args[0]
			if runF != nil {
				return runF(opts)
			}
			return showRun(cmd.Context(), opts)
		},
	}
	render.OutputVar(cmd, &opts.Output)
	cmd.Flags().BoolVar(&opts.Raw, "raw", false, "show every worker's raw result instead of the aggregate")
	return cmd
}

func showRun(ctx context.Context, opts *ShowOptions) error {
	f, exp := opts.F, opts.Exp
	if study.Exists(f.ResultsDir, exp) {
		return showStudy(f, exp, opts.Raw, opts.Output)
	}
	repo, err := f.Repository(ctx)
	if err != nil {
		return err
	}
	// The run's state first (on stderr beside JSON): an abandoned or failed run is said.
	rs := loadRunState(ctx, repo, exp)
	if d := rs.Describe(exp); d != "" && (opts.Raw || opts.Output == render.FormatJSON) {
		fmt.Fprintf(f.Err, "run: %s\n", d)
	}
	if opts.Raw {
		return showRaw(ctx, f.Out, repo, exp, opts.Output)
	}
	data, agg, err := loadAggregated(ctx, repo, exp)
	if err != nil {
		if d := rs.Describe(exp); d != "" && opts.Output != render.FormatJSON {
			return fmt.Errorf("%w\nrun: %s", err, d)
		}
		return err
	}
	if opts.Output == render.FormatJSON {
		_, err := f.Out.Write(data)
		return err
	}
	if d := rs.Describe(exp); d != "" {
		fmt.Fprintf(f.Out, "run         %s\n", d)
	}
	return WriteAggregated(f.Out, agg)
}

func loadAggregated(ctx context.Context, repo sdk.Repository, exp string) ([]byte, *results.Aggregated, error) {
	data, err := repo.LoadAggregated(ctx, exp)
	if errors.Is(err, sdk.ErrNotFound) {
		return nil, nil, cliutil.Failed(fmt.Errorf("experiment %s has no aggregate (run `lemctl aggregate %s`, or `lemctl results show --raw %s`): %w", exp, exp, exp, err))
	}
	if errors.Is(err, sdk.ErrInvalidArgument) {
		return nil, nil, cliutil.Usage(fmt.Errorf("experiment id: %w", err))
	}
	if err != nil {
		return nil, nil, cliutil.Failed(fmt.Errorf("load the aggregate of %s: %w", exp, err))
	}
	agg, err := results.DecodeAggregated(data)
	if err != nil {
		return nil, nil, cliutil.Failed(fmt.Errorf("the aggregate of %s: %w", exp, err))
	}
	return data, agg, nil
}

// loadRaws returns every stored raw result of exp, by rank.
func loadRaws(ctx context.Context, repo sdk.Repository, exp string) ([][]byte, []*results.Raw, error) {
	entries, err := repo.ListRaw(ctx, exp)
	if errors.Is(err, sdk.ErrInvalidArgument) {
		return nil, nil, cliutil.Usage(fmt.Errorf("experiment id: %w", err))
	}
	if err != nil {
		return nil, nil, cliutil.Failed(fmt.Errorf("list the raw results of %s: %w", exp, err))
	}
	var datas [][]byte
	var raws []*results.Raw
	for _, e := range entries {
		data, err := repo.LoadRaw(ctx, exp, e.Rank)
		if err != nil {
			return nil, nil, cliutil.Failed(fmt.Errorf("load %s rank %d: %w", exp, e.Rank, err))
		}
		r, err := results.DecodeRaw(data)
		if err != nil {
			return nil, nil, cliutil.Failed(fmt.Errorf("%s rank %d: %w", exp, e.Rank, err))
		}
		datas = append(datas, data)
		raws = append(raws, r)
	}
	return datas, raws, nil
}

func showRaw(ctx context.Context, w io.Writer, repo sdk.Repository, exp, output string) error {
	datas, raws, err := loadRaws(ctx, repo, exp)
	if err != nil {
		return err
	}
	if output == render.FormatJSON {
		// The stored documents, exactly as stored apart from indentation, in an array by rank.
		var buf bytes.Buffer
		buf.WriteString("[\n")
		for i, d := range datas {
			if i > 0 {
				buf.WriteString(",\n")
			}
			buf.WriteString("  ")
			if err := json.Indent(&buf, bytes.TrimSpace(d), "  ", "  "); err != nil {
				return cliutil.Failed(fmt.Errorf("%s rank %d: %w", exp, raws[i].Rank, err))
			}
		}
		buf.WriteString("\n]\n")
		_, err := w.Write(buf.Bytes())
		return err
	}
	for i, r := range raws {
		if i > 0 {
			fmt.Fprintln(w, "\n---")
		}
		if err := WriteRaw(w, r); err != nil {
			return err
		}
	}
	return nil
}

// Export formats: csv (the default), json (the stored aggregate) and table (the CSV's rows as
// aligned columns).
const (
	FormatCSV   = "csv"
	FormatJSON  = render.FormatJSON
	FormatTable = render.FormatTable
)

// ExportOptions are `results export`'s.
type ExportOptions struct {
	F   *cliutil.Factory
	Exp string
	// Format is csv, json or table (-o/--output, or --format).
	Format string
}

// NewCmdExport builds `results export EXP`; runF, when not nil, runs instead of exportRun (tests).
func NewCmdExport(f *cliutil.Factory, runF func(*ExportOptions) error) *cobra.Command {
	opts := &ExportOptions{F: f}
	cmd := &cobra.Command{
		Use:   "export EXP|STUDY",
		Short: "Export an experiment's results (the aggregate as JSON, or one CSV row for the aggregate and one per rank) or a study's (one row per point)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Exp = args[0]
			if runF != nil {
				return runF(opts)
			}
			return exportRun(cmd.Context(), opts)
		},
	}
	render.OutputVar(cmd, &opts.Format, FormatCSV, FormatJSON, FormatTable).Alias(cmd, "format")
	return cmd
}

func exportRun(ctx context.Context, opts *ExportOptions) error {
	f, exp := opts.F, opts.Exp
	if study.Exists(f.ResultsDir, exp) {
		return exportStudy(f, exp, opts.Format)
	}
	repo, err := f.Repository(ctx)
	if err != nil {
		return err
	}
	data, agg, err := loadAggregated(ctx, repo, exp)
	if err != nil {
		return err
	}
	if opts.Format == FormatJSON {
		_, err := f.Out.Write(data)
		return err
	}
	_, raws, err := loadRaws(ctx, repo, exp)
	if err != nil && !errors.Is(err, sdk.ErrNotFound) {
		return err
	}
	if opts.Format == FormatTable {
		var buf bytes.Buffer
		if err := WriteCSV(&buf, agg, raws); err != nil {
			return err
		}
		rows, err := csv.NewReader(&buf).ReadAll()
		if err != nil {
			return err
		}
		for _, r := range rows {
			for i := range r {
				if r[i] == "" {
					r[i] = na
				}
			}
		}
		return render.Table(f.Out, nil, rows)
	}
	return WriteCSV(f.Out, agg, raws)
}

// CSVHeader lists the columns of `lemctl results export --format csv`. An empty cell is a figure
// that was not measured.
var CSVHeader = []string{
	"scope", "experiment_id", "rank", "hostname", "device_slot", "config_hash", "model_ref", "engine",
	"requests", "input_tokens", "output_tokens", "batch_size", "duration_s",
	"output_tokens_per_s", "requests_per_s", "total_tokens_per_s",
	"ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms", "itl_p50_ms", "itl_p90_ms", "itl_p99_ms", "e2e_p50_ms", "e2e_p99_ms",
	"energy_total_j", "energy_static_j", "energy_dynamic_j", "j_per_output_token", "dynamic_j_per_output_token",
	"j_per_request", "tokens_per_j", "flops_total", "flops_per_output_token", "peak_memory_bytes",
	"valid", "partial",
	"co2e_g", "co2e_g_per_request", "co2e_g_per_output_token", "carbon_intensity_g_per_kwh", "energy_estimated",
	// Added with the uncertainty budget (after the older columns, so their positions hold).
	"energy_uncertainty_j", "energy_relative_uncertainty", "energy_static_uncertainty_j", "energy_dynamic_uncertainty_j",
	"j_per_output_token_uncertainty", "tokens_per_j_uncertainty",
	"prefill_j", "prefill_uncertainty_j", "decode_j", "decode_uncertainty_j",
}

// WriteCSV writes the aggregate's row, then one row per raw result.
func WriteCSV(w io.Writer, a *results.Aggregated, raws []*results.Raw) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	duration := a.Window.DurationS
	if a.Window.UnionS != nil {
		duration = *a.Window.UnionS
	}
	rows := [][]string{csvRow("aggregate", a.ExperimentID, "", "", "", a.ConfigHash, a.Model, a.Engine, a.Workload, duration,
		a.Throughput, a.LatencyMS, a.Energy, a.FLOPs, a.Memory, a.Validity.Valid, strconv.FormatBool(a.Partial))}
	for _, r := range raws {
		rows = append(rows, csvRow("rank", r.ExperimentID, strconv.Itoa(r.Rank), r.Host.Hostname, r.Device.Slot, r.ConfigHash,
			r.Model, r.Engine, r.Workload, r.Window.DurationS, r.Throughput, r.LatencyMS, r.Energy, r.FLOPs, r.Memory, r.Validity.Valid, ""))
	}
	if err := cw.WriteAll(rows); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}

func csvRow(scope, exp, rank, host, slot, hash string, m results.Model, e results.Engine, wl results.Workload, duration float64,
	t results.Throughput, l results.Latency, en results.Energy, f results.FLOPs, mem results.Memory, valid bool, partial string) []string {
	batch := ""
	if wl.BatchSize != nil {
		batch = strconv.Itoa(*wl.BatchSize)
	}
	peak := ""
	if mem.PeakBytes != nil {
		peak = strconv.FormatInt(*mem.PeakBytes, 10)
	}
	return []string{scope, exp, rank, host, slot, hash, m.Ref, e.Plugin + " " + e.Version,
		strconv.FormatInt(wl.Requests, 10), strconv.FormatInt(wl.InputTokens, 10), strconv.FormatInt(wl.OutputTokens, 10), batch,
		strconv.FormatFloat(duration, 'g', -1, 64),
		cell(t.OutputTokensPerS), cell(t.RequestsPerS), cell(t.TotalTokensPerS),
		cell(l.TTFT.P50), cell(l.TTFT.P90), cell(l.TTFT.P99), cell(l.ITL.P50), cell(l.ITL.P90), cell(l.ITL.P99), cell(l.E2E.P50), cell(l.E2E.P99),
		cell(en.TotalJ), cell(en.StaticJ), cell(en.DynamicJ), cell(en.JPerOutputToken), cell(en.DynamicJPerOutputToken),
		cell(en.JPerRequest), cell(en.TokensPerJ), cell(f.Total), cell(f.PerOutputToken), peak,
		strconv.FormatBool(valid), partial,
		co2Cell(en.CO2e, func(c *results.CO2e) *float64 { return c.G }), co2Cell(en.CO2e, func(c *results.CO2e) *float64 { return c.GPerRequest }),
		co2Cell(en.CO2e, func(c *results.CO2e) *float64 { return c.GPerOutputToken }),
		co2Cell(en.CO2e, func(c *results.CO2e) *float64 { return &c.IntensityGPerKWh }), strconv.FormatBool(en.Estimated),
		cell(en.UncertaintyJ), cell(en.RelativeUncertainty), cell(en.StaticUncertaintyJ), cell(en.DynamicUncertaintyJ),
		cell(en.JPerOutputTokenUncertainty), cell(en.TokensPerJUncertainty),
		cell(en.Phases.PrefillJ), cell(en.Phases.PrefillUncertaintyJ), cell(en.Phases.DecodeJ), cell(en.Phases.DecodeUncertaintyJ)}
}

// co2Cell is one CO₂e figure for CSV: empty when no carbon intensity was configured.
func co2Cell(c *results.CO2e, f func(*results.CO2e) *float64) string {
	if c == nil {
		return ""
	}
	return cell(f(c))
}

// cell formats a nullable figure for CSV: empty when not measured, else the shortest exact form.
func cell(v *float64) string {
	if v == nil {
		return ""
	}
	return strconv.FormatFloat(*v, 'g', -1, 64)
}

func nonNil(v []int) []int {
	if v == nil {
		return []int{}
	}
	return v
}

func yesPtr(b *bool) string {
	if b == nil {
		return na
	}
	return yes(*b)
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
