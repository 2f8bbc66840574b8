package datasetscmd

import (
	"errors"
	"fmt"
	"io/fs"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/lemctl/lemctl/host/cliutil"
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

// NewCommand builds `lemctl datasets`.
func NewCommand(env *cliutil.Env) *cobra.Command {
	var output, format, column string
	cmd := &cobra.Command{
		Use:   "datasets [DATASET]",
		Short: "List the built-in prompt sets and dataset formats, or inspect one dataset",
		Long: `Without an argument, datasets lists the built-in prompt sets, synthetic datasets and the file
formats workload.dataset accepts. With DATASET (a built-in name or a file), it loads it as a run
would and prints its name, format, sha256, prompt count and how many records had no prompt.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				return inspect(cmd, env, args[0], format, column, output)
			}
			return list(env, output)
		},
	}
	f := cmd.Flags()
	cliutil.OutputVar(cmd, &output)
	f.StringVar(&format, "format", dataset.FormatAuto, "format of DATASET: auto, jsonl, alpaca, sharegpt or text")
	f.StringVar(&column, "column", "", "field holding the prompt in JSONL or Alpaca records")
	return cmd
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

func list(env *cliutil.Env, output string) error {
	l := listing()
	if output == cliutil.OutputJSON {
		return cliutil.WriteJSON(env.Out, l)
	}
	tw := tabwriter.NewWriter(env.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BUILT-IN\tVERSION\tPROMPTS\tSHA256\tDESCRIPTION")
	for _, b := range l.Builtin {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", b.Name, b.Version, b.Prompts, b.SHA256, b.Description)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "SYNTHETIC")
	fmt.Fprintln(tw, l.Synthetic)
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "FORMAT\tEXTENSIONS\tREADS")
	for _, f := range l.Formats {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", f.Name, f.Extensions, f.Reads)
	}
	return tw.Flush()
}

func inspect(cmd *cobra.Command, env *cliutil.Env, name, format, column, output string) error {
	src, err := dataset.ParseSource(name)
	if err != nil {
		return cliutil.Usage(fmt.Errorf("datasets: %w", err))
	}
	if src.Kind == dataset.SourceSynthetic {
		return cliutil.Usagef("datasets: %s is built at run time with the model's tokenizer; nothing to inspect", name)
	}
	d, err := dataset.Open(cmd.Context(), name, dataset.Options{Format: format, Column: column})
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission):
		return cliutil.Usage(err)
	case err != nil:
		return cliutil.Failed(err)
	}
	in := Inspection{Name: d.Name, Version: d.Version, Format: d.Format, SHA256: d.SHA256, Prompts: d.Len(), Skipped: d.Skipped,
		NonUTF8: dataset.NonUTF8(d.Prompts)}
	if output == cliutil.OutputJSON {
		return cliutil.WriteJSON(env.Out, in)
	}
	tw := tabwriter.NewWriter(env.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "name\t%s\n", in.Name)
	if in.Version != "" {
		fmt.Fprintf(tw, "version\t%s\n", in.Version)
	}
	fmt.Fprintf(tw, "format\t%s\nsha256\t%s\nprompts\t%d\nskipped\t%d (records without a prompt)\n", in.Format, in.SHA256, in.Prompts, in.Skipped)
	fmt.Fprintf(tw, "utf-8\t%d prompts with bytes that are not UTF-8, replaced by U+FFFD\n", in.NonUTF8)
	return tw.Flush()
}
