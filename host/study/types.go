// Package study is lemctl's studies: a base experiment run over a grid (or list) of settings,
// several cycles each, and the per-point statistics over cycles that `sweep`, `compare`,
// `frontier` and `report` read. It holds the stored shape of a study; it never runs plugins
// itself and never changes a stored experiment.
package study

import "github.com/lemctl/lemctl/host/results"

// SchemaVersion is the version of the stored study aggregate (study.json).
const SchemaVersion = "1"

// Kind is the "kind" of a stored study aggregate.
const Kind = "study"

// Figure names: the per-point figures a study aggregates over cycles. Each is the value of one
// experiment's aggregate (one cycle); a point's Stats summarise them.
const (
	FigureJPerOutputToken        = "j_per_output_token"         // total energy ÷ output tokens, J
	FigureDynamicJPerOutputToken = "dynamic_j_per_output_token" // dynamic energy ÷ output tokens, J
	FigureOutputTokensPerS       = "output_tokens_per_s"        // output tokens/s over the window
	FigureTTFTP50MS              = "ttft_p50_ms"
	FigureTTFTP99MS              = "ttft_p99_ms"
	FigureITLP50MS               = "itl_p50_ms"
	FigureITLP99MS               = "itl_p99_ms"
	FigurePowerW                 = "power_w" // mean counted power over the window, W
)

// Figures lists the figure names in the order tables print them.
var Figures = []string{
	FigureJPerOutputToken, FigureDynamicJPerOutputToken, FigureOutputTokensPerS,
	FigureTTFTP50MS, FigureTTFTP99MS, FigureITLP50MS, FigureITLP99MS, FigurePowerW,
}

// Aggregate is a stored study: results/studies/<study id>/study.json.
type Aggregate struct {
	SchemaVersion string `json:"schema_version"`
	Kind          string `json:"kind"`
	StudyID       string `json:"study_id"`
	Name          string `json:"name"`
	// Base is the base experiment file as the study file names it, and StudyFile the study
	// file's path when the sweep started.
	Base      string  `json:"base"`
	StudyFile string  `json:"study_file"`
	Cycles    int     `json:"cycles"`
	Order     string  `json:"order"` // grouped | interleaved | shuffled
	Seed      int64   `json:"seed"`
	GapS      float64 `json:"gap_s"`
	// Axes are the grid's axes in the study file's order; empty for an explicit list of points.
	Axes   []Axis           `json:"axes"`
	Points []PointAggregate `json:"points"`
	// State is "running", "completed", "failed" or "interrupted" (results.State*).
	State         string `json:"state"`
	StartUnixNS   int64  `json:"start_unix_ns"`
	EndUnixNS     *int64 `json:"end_unix_ns"`
	LemctlVersion string `json:"lemctl_version"`
}

// Axis is one swept dotted key and its values, in order.
type Axis struct {
	Key    string `json:"key"`
	Values []any  `json:"values"`
}

// PointAggregate is one point of a study: its settings and its figures over cycles.
type PointAggregate struct {
	// ID is the point's id within the study ("p00", "p01", …) in plan order.
	ID string `json:"id"`
	// Settings are the dotted keys this point sets on the base experiment, with their values.
	Settings   map[string]any `json:"settings"`
	ConfigHash string         `json:"config_hash"`
	// Experiments are the experiment ids of the point's completed cycles, in cycle order.
	Experiments []string `json:"experiments"`
	// Valid is false when any of the point's experiments is invalid (see Findings).
	Valid    bool              `json:"valid"`
	Findings []results.Finding `json:"findings"`
	// Figures holds, per figure name, the statistics over cycles (Values in cycle order).
	Figures map[string]*results.Stats `json:"figures"`
}
