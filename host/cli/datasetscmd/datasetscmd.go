package datasetscmd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/cliutil/render"
	"github.com/lemctl/lemctl/host/dataset"
)

// Listing is what `lemctl datasets --output json` prints.
type Listing struct {
	Builtin   []Builtin `json:"builtin"`
	Synthetic string    `json:"synthetic"`
	Formats   []Format  `json:"formats"`
}

// Builtin describes a built-in prompt set.
type Builtin struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	Prompts     int    `json:"prompts"`
	SHA256      string `json:"sha256"`
	Description string `json:"description"`
}

// Format describes a dataset file format.
type Format struct {
	Name       string `json:"name"`
	Extensions string `json:"extensions"`
	Reads      string `json:"reads"`
}

// Inspection is what `lemctl datasets DATASET --output json` prints.
type Inspection struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	Format  string `json:"format"`
	SHA256  string `json:"sha256"`
	Prompts int    `json:"prompts"`
	Skipped int    `json:"skipped"`
	// NonUTF8 counts the prompts whose bytes were not valid UTF-8 (replaced by U+FFFD).
	NonUTF8 int `json:"non_utf8"`
}

const syntheticDoc = "synthetic:<input_tokens>: workload.prompts prompts of exactly <input_tokens> tokens each, cut from the built-in set tokenized with the model's own tokenizer (built at run time)"

// Options are `lemctl datasets`'s.
type Options struct {
	F *cliutil.Factory
	// Dataset is the one to inspect; "" lists the built-in sets and formats.
	Dataset string
	Format  string
	Column  string
	Output  string
}

// NewCommand builds `lemctl datasets`.
func NewCommand(f *cliutil.Factory) *cobra.Command { return NewCmdDatasets(f, nil) }

// NewCmdDatasets builds `lemctl datasets [DATASET]`; runF, when not nil, runs instead of
// datasetsRun (tests).
func NewCmdDatasets(f *cliutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{F: f}
	cmd := &cobra.Command{
		Use:   "datasets [DATASET]",
		Short: "List the built-in prompt sets and dataset formats, or inspect one dataset",
		Long: `Without an argument, datasets lists the built-in prompt sets, synthetic datasets and the file
formats workload.dataset accepts. With DATASET (a built-in name or a file), it loads it as a run
would and prints its name, format, sha256, prompt count and how many records had no prompt.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Dataset = args[0]
			}
			if runF != nil {
				return runF(opts)
			}
			return datasetsRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	render.OutputVar(cmd, &opts.Output)
	fl.StringVar(&opts.Format, "format", dataset.FormatAuto, "format of DATASET: auto, jsonl, alpaca, sharegpt or text")
	fl.StringVar(&opts.Column, "column", "", "field holding the prompt in JSONL or Alpaca records")
	return cmd
}

func datasetsRun(ctx context.Context, opts *Options) error {
	if opts.Dataset != "" {
		return inspect(ctx, opts.F, opts.Dataset, opts.Format, opts.Column, opts.Output)
	}
	return list(opts.F, opts.Output)
}

func listing() Listing {
	l := Listing{Synthetic: syntheticDoc}
	for _, b := range dataset.Builtins() {
		l.Builtin = append(l.Builtin, Builtin{Name: b.Name, Version: b.Version, Prompts: b.Count, SHA256: b.SHA256, Description: b.Description})
	}
	for _, f := range dataset.Formats {
		l.Formats = append(l.Formats, Format{Name: f.Name, Extensions: f.Extensions, Reads: f.Reads})
	}
	return l
}

func list(env *cliutil.Factory, output string) error {
	l := listing()
	if output == render.FormatJSON {
		return render.JSON(env.Out, l)
	}
	var builtin [][]string
	for _, b := range l.Builtin {
		builtin = append(builtin, []string{b.Name, b.Version, strconv.Itoa(b.Prompts), b.SHA256, b.Description})
	}
	if err := render.Table(env.Out, []string{"BUILT-IN", "VERSION", "PROMPTS", "SHA256", "DESCRIPTION"}, builtin); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(env.Out, "\nSYNTHETIC\n%s\n\n", l.Synthetic); err != nil {
		return err
	}
	var formats [][]string
	for _, f := range l.Formats {
		formats = append(formats, []string{f.Name, f.Extensions, f.Reads})
	}
	return render.Table(env.Out, []string{"FORMAT", "EXTENSIONS", "READS"}, formats)
}

func inspect(ctx context.Context, env *cliutil.Factory, name, format, column, output string) error {
	src, err := dataset.ParseSource(name)
	if err != nil {
		return cliutil.Usage(fmt.Errorf("datasets: %w", err))
	}
	if src.Kind == dataset.SourceSynthetic {
		return cliutil.Usagef("datasets: %s is built at run time with the model's tokenizer; nothing to inspect", name)
	}
	d, err := dataset.Open(ctx, name, dataset.Options{Format: format, Column: column})
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission):
		return cliutil.Usage(err)
	case err != nil:
		return cliutil.Failed(err)
	}
	in := Inspection{Name: d.Name, Version: d.Version, Format: d.Format, SHA256: d.SHA256, Prompts: d.Len(), Skipped: d.Skipped,
		NonUTF8: dataset.NonUTF8(d.Prompts)}
	if output == render.FormatJSON {
		return render.JSON(env.Out, in)
	}
	tw := render.NewTabWriter(env.Out)
	fmt.Fprintf(tw, "name\t%s\n", in.Name)
	if in.Version != "" {
		fmt.Fprintf(tw, "version\t%s\n", in.Version)
	}
	fmt.Fprintf(tw, "format\t%s\nsha256\t%s\nprompts\t%d\nskipped\t%d (records without a prompt)\n", in.Format, in.SHA256, in.Prompts, in.Skipped)
	fmt.Fprintf(tw, "utf-8\t%d prompts with bytes that are not UTF-8, replaced by U+FFFD\n", in.NonUTF8)
	return tw.Flush()
}
