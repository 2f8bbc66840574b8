package configcmd

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/lemctl/lemctl/examples"
	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/cliutil/render"
	"github.com/lemctl/lemctl/host/config"
)

// overrides are -d, -n and --set, shared by validate and show (and meant to match run's).
type overrides struct {
	Dataset string
	// Prompts is -n; nil when it was not given.
	Prompts *int
	Set     []string
}

// register binds the flags to o; prompts holds -n until the command runs (see collect).
func (o *overrides) register(cmd *cobra.Command, prompts *int) {
	f := cmd.Flags()
	f.StringVarP(&o.Dataset, "dataset", "d", "", "dataset: builtin, synthetic:<input_tokens> or a file (overrides workload.dataset)")
	f.IntVarP(prompts, "prompts", "n", 0, "number of prompts (overrides workload.prompts)")
	f.StringArrayVar(&o.Set, "set", nil, "key.path=VALUE with VALUE a TOML value, e.g. workload.batch_size=4 (repeatable; beats the file)")
}

// collect sets Prompts when -n was given.
func (o *overrides) collect(cmd *cobra.Command, prompts int) {
	if cmd.Flags().Changed("prompts") {
		o.Prompts = &prompts
	}
}

func (o *overrides) config() config.Overrides {
	return config.Overrides{Dataset: o.Dataset, Prompts: o.Prompts, Set: o.Set}
}

// NewCommand builds `lemctl config`.
func NewCommand(f *cliutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check experiment files and show the effective configuration and its hash",
		Long: `Experiment files are TOML; docs/config.md lists every key with its default and range.

  lemctl config validate FILE…   check files: every problem as FILE:LINE: key: message (valid: …)
  lemctl config show [FILE]      the effective config, every default filled in, and its hash

Exit codes: 0 valid, 2 invalid (nothing is written either way).`,
	}
	cmd.AddCommand(NewCmdValidate(f, nil), NewCmdShow(f, nil))
	return cmd
}

// configurer returns the Factory's plugin configurer, or nil with a warning on stderr when it
// has none.
func configurer(ctx context.Context, f *cliutil.Factory) (config.PluginConfigurer, func(), error) {
	if f.Configurer == nil {
		fmt.Fprintln(f.Err, "warning: plugin tables ([engine], [energy.<meter>], … keys of plugins) are not checked: plugin discovery is not available in this build")
		return nil, func() {}, nil
	}
	c, done, err := f.Configurer(ctx)
	if err != nil {
		return nil, nil, cliutil.Failed(fmt.Errorf("config: cannot start plugin discovery to check plugin tables: %w", err))
	}
	if done == nil {
		done = func() {}
	}
	return c, done, nil
}

// load loads one file (or the embedded quickstart when file is ""), printing errors and
// warnings to stderr. An invalid config returns its config.Errors (already printed).
func load(ctx context.Context, env *cliutil.Factory, file string, opts config.Options) (*config.Config, error) {
	var cfg *config.Config
	var err error
	if file == "" {
		cfg, err = config.Load(ctx, examples.QuickstartName, examples.Quickstart, opts)
	} else {
		cfg, err = config.LoadFile(ctx, file, opts)
	}
	if err != nil {
		var errs config.Errors
		if !errors.As(err, &errs) {
			return nil, err
		}
		for _, e := range errs {
			fmt.Fprintln(env.Err, e.Error())
		}
		return nil, errs
	}
	name := file
	if name == "" {
		name = examples.QuickstartName + " (embedded)"
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(env.Err, "%s: warning: %s\n", name, w)
	}
	return cfg, nil
}

// ValidateJSON is one file's verdict in `config validate --output json`.
type ValidateJSON struct {
	File       string      `json:"file"`
	Valid      bool        `json:"valid"`
	ConfigHash *string     `json:"config_hash"`
	Errors     []ErrorJSON `json:"errors"`
	Warnings   []string    `json:"warnings"`
}

// ErrorJSON is one configuration problem.
type ErrorJSON struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Source  string `json:"source,omitempty"`
	Key     string `json:"key,omitempty"`
	Message string `json:"message"`
	Valid   string `json:"valid,omitempty"`
}

// ValidateOptions are `config validate`'s.
type ValidateOptions struct {
	F     *cliutil.Factory
	Files []string
	overrides
	Output string
}

// NewCmdValidate builds `config validate FILE…`; runF, when not nil, runs instead of
// validateRun (tests).
func NewCmdValidate(f *cliutil.Factory, runF func(*ValidateOptions) error) *cobra.Command {
	opts := &ValidateOptions{F: f}
	var prompts int
	cmd := &cobra.Command{
		Use:   "validate FILE…",
		Short: "Check experiment files; print every problem with its line (exit 2 if any)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			opts.Files = files
			opts.collect(cmd, prompts)
			if runF != nil {
				return runF(opts)
			}
			return validateRun(cmd.Context(), opts)
		},
	}
	opts.register(cmd, &prompts)
	render.OutputVar(cmd, &opts.Output)
	return cmd
}

func validateRun(ctx context.Context, opts *ValidateOptions) error {
	env, files, output := opts.F, opts.Files, opts.Output
	c, done, err := configurer(ctx, env)
	if err != nil {
		return err
	}
	defer done()
	invalid := 0
	verdicts := []ValidateJSON{}
	for _, file := range files {
		cfg, err := load(ctx, env, file, config.Options{Configurer: c, Overrides: opts.config(), ResultsDir: env.ResultsDir})
		var errs config.Errors
		switch {
		case errors.As(err, &errs):
			invalid++
			v := ValidateJSON{File: file, Errors: []ErrorJSON{}, Warnings: []string{}}
			for _, e := range errs {
				v.Errors = append(v.Errors, ErrorJSON{File: e.File, Line: e.Line, Source: e.Source, Key: e.Key, Message: e.Message, Valid: e.Valid})
			}
			verdicts = append(verdicts, v)
			continue
		case err != nil:
			return cliutil.Failed(fmt.Errorf("config validate %s: %w", file, err))
		}
		hash, err := config.Hash(cfg)
		if err != nil {
			return cliutil.Failed(err)
		}
		if output == render.FormatJSON {
			warnings := append([]string{}, cfg.Warnings...)
			verdicts = append(verdicts, ValidateJSON{File: file, Valid: true, ConfigHash: &hash, Errors: []ErrorJSON{}, Warnings: warnings})
			continue
		}
		fmt.Fprintf(env.Out, "%s: valid (config_hash %s)\n", file, hash)
	}
	if output == render.FormatJSON {
		if err := render.JSON(env.Out, verdicts); err != nil {
			return err
		}
	}
	if invalid > 0 {
		return cliutil.Usagef("%d of %d config files invalid", invalid, len(files))
	}
	return nil
}

// ShowJSON is what `config show --output json` prints.
type ShowJSON struct {
	File                string            `json:"file"`
	ConfigHash          string            `json:"config_hash"`
	Config              map[string]any    `json:"config"`
	Sources             map[string]string `json:"sources"`
	Warnings            []string          `json:"warnings"`
	PluginTablesChecked bool              `json:"plugin_tables_checked"`
}

// ShowOptions are `config show`'s.
type ShowOptions struct {
	F *cliutil.Factory
	// File is the experiment file; "" is the embedded quickstart.
	File string
	overrides
	Output string
}

// NewCmdShow builds `config show [FILE]`; runF, when not nil, runs instead of showRun (tests).
func NewCmdShow(f *cliutil.Factory, runF func(*ShowOptions) error) *cobra.Command {
	opts := &ShowOptions{F: f}
	var prompts int
	cmd := &cobra.Command{
		Use:   "show [FILE]",
		Short: "Print the effective config (every default filled in, overrides applied) and its hash",
		Long: `Show prints the configuration a run of FILE would use — the file, overridden by -d, -n and
--set, with every default filled in — and the config hash the run would record. Without FILE it
shows the embedded quickstart experiment. --output toml prints a file that loads back to the same
hash (the hash and the overridden keys are comments); --output json adds the record of where each
overridden value came from.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.File = args[0]
			}
			opts.collect(cmd, prompts)
			if runF != nil {
				return runF(opts)
			}
			return showRun(cmd.Context(), opts)
		},
	}
	opts.register(cmd, &prompts)
	render.OutputVar(cmd, &opts.Output, render.FormatTOML, render.FormatJSON)
	return cmd
}

func showRun(ctx context.Context, opts *ShowOptions) error {
	env, file := opts.F, opts.File
	c, done, err := configurer(ctx, env)
	if err != nil {
		return err
	}
	defer done()
	cfg, err := load(ctx, env, file, config.Options{Configurer: c, Overrides: opts.config(), ResultsDir: env.ResultsDir})
	var errs config.Errors
	switch {
	case errors.As(err, &errs):
		return cliutil.Usagef("%s: invalid config (%d problems)", displayName(file), len(errs))
	case err != nil:
		return cliutil.Failed(err)
	}
	hash, err := config.Hash(cfg)
	if err != nil {
		return cliutil.Failed(err)
	}
	if opts.Output == render.FormatJSON {
		sources := cfg.Sources
		if sources == nil {
			sources = map[string]string{}
		}
		warnings := cfg.Warnings
		if warnings == nil {
			warnings = []string{}
		}
		return render.JSON(env.Out, ShowJSON{File: displayName(file), ConfigHash: hash, Config: cfg.Map(),
			Sources: sources, Warnings: warnings, PluginTablesChecked: cfg.PluginTablesChecked})
	}
	return writeTOML(env.Out, file, hash, cfg)
}

func displayName(file string) string {
	if file == "" {
		return examples.QuickstartName + " (embedded)"
	}
	return file
}

func writeTOML(w io.Writer, file, hash string, cfg *config.Config) error {
	fmt.Fprintf(w, "# effective config of %s\n# config_hash = %s\n", displayName(file), hash)
	if !cfg.PluginTablesChecked {
		fmt.Fprintln(w, "# plugin tables were not checked by their plugins")
	}
	for _, s := range cfg.SourceLines() {
		fmt.Fprintf(w, "# overridden: %s\n", s)
	}
	fmt.Fprintln(w)
	return cfg.WriteTOML(w)
}
