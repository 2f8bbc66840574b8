package pluginscmd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/cliutil/render"
	"github.com/lemctl/lemctl/host/discovery"
	"github.com/lemctl/lemctl/host/echo"
	"github.com/lemctl/lemctl/sdk"
)

// NewCommand builds `lemctl plugins` with its list, describe, lock and check subcommands.
func NewCommand(f *cliutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugins",
		Short: "List, describe, lock and check the plugins lemctl finds",
		Long: `Plugins are executables named lem-plugin-<name> found in --plugin-dir, $LEM_PLUGIN_PATH
(colon-separated, absolute entries only) and <dir of lemctl>/plugins — never the working
directory. A plugin in --plugin-dir wins over one of the same name elsewhere; otherwise the
highest version wins. See docs/plugins.md.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(NewCmdList(f, nil), NewCmdDescribe(f, nil), NewCmdLock(f, nil), newCheck(f))
	return cmd
}

// discover returns the Factory's catalog, checked against lock when not ""; a bad --plugin-dir or
// --lock is a usage error.
func discover(ctx context.Context, f *cliutil.Factory, lock string) (*discovery.Catalog, error) {
	cat, err := f.Catalog(ctx, lock)
	if err != nil {
		if ctx.Err() != nil {
			return nil, cliutil.Exit(cliutil.ExitInterrupted, err)
		}
		return nil, cliutil.Usage(err)
	}
	return cat, nil
}

// Plugin is one line of `lemctl plugins list --output json` (and the head of describe's).
type Plugin struct {
	Name        string     `json:"name"`
	Kinds       []sdk.Kind `json:"kinds"`
	Version     string     `json:"version"`
	APIVersions []int      `json:"api_versions"`
	// APIVersion is the protocol version lemctl will speak with it (0: none).
	APIVersion int    `json:"api_version"`
	Path       string `json:"path"`
	Source     string `json:"source"`
	SHA256     string `json:"sha256"`
	// Lock is unlocked, locked, mismatch or unlisted; LockFile the lock that applies.
	Lock     string `json:"lock"`
	LockFile string `json:"lock_file,omitempty"`
	// Available: it answered and passed every check. Selected: it is the one lemctl uses for
	// its name. Reason: why it is unavailable, or what shadows it.
	Available bool   `json:"available"`
	Selected  bool   `json:"selected"`
	Reason    string `json:"reason,omitempty"`
	Cached    bool   `json:"cached"`
}

// Dir is one searched directory in `lemctl plugins list --output json`.
type Dir struct {
	Path    string `json:"path"`
	Source  string `json:"source"`
	Exists  bool   `json:"exists"`
	Lock    string `json:"lock,omitempty"`
	Problem string `json:"problem,omitempty"`
}

// List is the output of `lemctl plugins list --output json`.
type List struct {
	Plugins  []Plugin `json:"plugins"`
	Searched []Dir    `json:"searched"`
	Warnings []string `json:"warnings"`
}

func toPlugin(p *discovery.Plugin) Plugin {
	out := Plugin{
		Name: p.Name, Kinds: p.Info.Kinds, Version: p.Info.Version, APIVersions: p.Info.APIVersions,
		APIVersion: p.APIVersion, Path: p.Path, Source: string(p.Source), SHA256: p.SHA256,
		Lock: string(p.Lock), LockFile: p.LockFile, Available: p.Available, Selected: p.Selected,
		Reason: p.Reason, Cached: p.Cached,
	}
	if out.Kinds == nil {
		out.Kinds = []sdk.Kind{}
	}
	if out.APIVersions == nil {
		out.APIVersions = []int{}
	}
	return out
}

// listing orders every candidate: by name, the selected one first, then in search order.
func listing(cat *discovery.Catalog) List {
	l := List{Plugins: []Plugin{}, Searched: []Dir{}, Warnings: cat.Warnings}
	if l.Warnings == nil {
		l.Warnings = []string{}
	}
	cands := append([]*discovery.Plugin(nil), cat.Candidates...)
	sort.SliceStable(cands, func(i, j int) bool {
		if cands[i].Name != cands[j].Name {
			return cands[i].Name < cands[j].Name
		}
		return cands[i].Selected && !cands[j].Selected
	})
	for _, c := range cands {
		l.Plugins = append(l.Plugins, toPlugin(c))
	}
	for _, d := range cat.Dirs {
		l.Searched = append(l.Searched, Dir{Path: d.Path, Source: string(d.Source), Exists: d.Exists, Lock: d.Lock, Problem: d.Problem})
	}
	return l
}

// ListOptions are `plugins list`'s.
type ListOptions struct {
	F      *cliutil.Factory
	Lock   string
	Output string
}

// NewCmdList builds `plugins list`; runF, when not nil, runs instead of listRun (tests).
func NewCmdList(f *cliutil.Factory, runF func(*ListOptions) error) *cobra.Command {
	opts := &ListOptions{F: f}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List every plugin found, with its kinds, version, hash, lock status and availability",
		Long: `List every lem-plugin-* file found. Each is started, asked its Info, probed and killed
(answers are cached by path, size and modification time). Unusable plugins are listed with the
reason; they never hide the others. Exit code 0 whenever the listing was made.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(opts)
			}
			return listRun(cmd.Context(), opts)
		},
	}
	render.OutputVar(cmd, &opts.Output)
	cmd.Flags().StringVar(&opts.Lock, "lock", "", "check plugins against this lock file instead of each directory's DIR.lock")
	return cmd
}

func listRun(ctx context.Context, opts *ListOptions) error {
	env := opts.F
	cat, err := discover(ctx, env, opts.Lock)
	if err != nil {
		return err
	}
	l := listing(cat)
	for _, p := range cat.Problems() {
		env.Logger.Error("plugin unusable", "path", p.Path, "reason", p.Reason)
	}
	if len(l.Plugins) == 0 {
		env.Logger.Warn("no plugins found", "searched", strings.Join(cat.Searched(), ", "))
	}
	if opts.Output == render.FormatJSON {
		return render.JSON(env.Out, l)
	}
	return writeListTable(env.Out, l)
}

func writeListTable(w io.Writer, l List) error {
	rows := make([][]string, 0, len(l.Plugins))
	for _, p := range l.Plugins {
		status := "ok"
		switch {
		case !p.Available:
			status = "UNUSABLE: " + p.Reason
		case !p.Selected:
			status = p.Reason
		}
		rows = append(rows, []string{p.Name, orDash(kindList(p.Kinds)), orDash(p.Version),
			orDash(intList(p.APIVersions)), p.Lock, orDash(short(p.SHA256)), p.Path, status})
	}
	return render.Table(w, []string{"NAME", "KINDS", "VERSION", "API", "LOCK", "SHA256", "PATH", "STATUS"}, rows)
}

// DescribeOptions are `plugins describe`'s.
type DescribeOptions struct {
	F      *cliutil.Factory
	Name   string
	Lock   string
	Output string
}

// NewCmdDescribe builds `plugins describe NAME`; runF, when not nil, runs instead of describeRun
// (tests).
func NewCmdDescribe(f *cliutil.Factory, runF func(*DescribeOptions) error) *cobra.Command {
	opts := &DescribeOptions{F: f}
	cmd := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show one plugin's capabilities and configuration schema (keys, types, defaults, docs)",
		Args:  cobra.ExactArgs(1),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return pluginNames(cmd.Context(), f), cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if runF != nil {
				return runF(opts)
			}
			return describeRun(cmd.Context(), opts)
		},
	}
	render.OutputVar(cmd, &opts.Output)
	cmd.Flags().StringVar(&opts.Lock, "lock", "", "check plugins against this lock file instead of each directory's DIR.lock")
	return cmd
}

func describeRun(ctx context.Context, opts *DescribeOptions) error {
	env, name := opts.F, opts.Name
	cat, err := discover(ctx, env, opts.Lock)
	if err != nil {
		return err
	}
	p, ok := cat.Find(name)
	if !ok {
		for _, c := range cat.Candidates {
			if c.Name == name {
				p, ok = c, true
				break
			}
		}
	}
	if !ok {
		var installed []string
		for _, q := range cat.Plugins() {
			installed = append(installed, q.Name)
		}
		return cliutil.Usagef("plugin %s is not installed (installed: %s; searched %s)", echo.Quote(name),
			orNone(strings.Join(installed, ", ")), strings.Join(cat.Searched(), ", "))
	}
	d := toDescription(p)
	if opts.Output == render.FormatJSON {
		err = render.JSON(env.Out, d)
	} else {
		err = writeDescription(env.Out, d)
	}
	if err != nil {
		return err
	}
	if !p.Available {
		return cliutil.Failed(fmt.Errorf("plugin %q at %s is unusable: %s", name, p.Path, p.Reason))
	}
	return nil
}

// pluginNames lists the usable plugins for shell completion (quietly: completion must not
// print logs; the root has not set the Factory's logger when cobra completes).
func pluginNames(ctx context.Context, f *cliutil.Factory) []string {
	if ctx == nil {
		ctx = context.Background()
	}
	cat, err := f.Catalog(ctx, "")
	if err != nil {
		return nil
	}
	var names []string
	for _, p := range cat.Plugins() {
		names = append(names, p.Name+"\t"+kindList(p.Info.Kinds))
	}
	return names
}

// Description is the output of `lemctl plugins describe NAME --output json`.
type Description struct {
	Plugin
	Description  string            `json:"description"`
	Capabilities map[string]string `json:"capabilities"`
	Config       []ConfigKey       `json:"config"`
}

// ConfigKey is one key of a plugin's configuration table.
type ConfigKey struct {
	Key     string          `json:"key"`
	Type    string          `json:"type"`
	Default json.RawMessage `json:"default"`
	Valid   string          `json:"valid"`
	Doc     string          `json:"doc"`
}

func toDescription(p *discovery.Plugin) Description {
	d := Description{Plugin: toPlugin(p), Description: p.Info.Description, Capabilities: p.Info.Capabilities, Config: []ConfigKey{}}
	if d.Capabilities == nil {
		d.Capabilities = map[string]string{}
	}
	for _, k := range p.Info.ConfigSchema {
		def := json.RawMessage("null")
		if k.Default != nil {
			if b, err := json.Marshal(k.Default); err == nil {
				def = b
			}
		}
		d.Config = append(d.Config, ConfigKey{Key: k.Key, Type: k.Type, Default: def, Valid: k.Valid(), Doc: k.Doc})
	}
	return d
}

func writeDescription(w io.Writer, d Description) error {
	tw := render.NewTabWriter(w)
	status := "ok"
	switch {
	case !d.Available:
		status = "UNUSABLE: " + d.Reason
	case !d.Selected:
		status = d.Reason
	}
	for _, r := range [][2]string{
		{"name", d.Name},
		{"version", orDash(d.Version)},
		{"description", orDash(d.Description)},
		{"kinds", orDash(kindList(d.Kinds))},
		{"api versions", orDash(intList(d.APIVersions))},
		{"path", d.Path + " (" + d.Source + ")"},
		{"sha256", orDash(d.SHA256)},
		{"lock", d.Lock + lockFileNote(d.LockFile)},
		{"status", status},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", r[0], r[1])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(d.Capabilities) > 0 {
		fmt.Fprintln(w, "\ncapabilities:")
		keys := make([]string, 0, len(d.Capabilities))
		for k := range d.Capabilities {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "  %s = %s\n", k, d.Capabilities[k])
		}
	}
	if len(d.Config) == 0 {
		if d.Available {
			fmt.Fprintln(w, "\nconfiguration: none (the plugin's table must be empty)")
		}
		return nil
	}
	fmt.Fprintln(w, "\nconfiguration:")
	rows := make([][]string, 0, len(d.Config))
	for _, k := range d.Config {
		def := string(k.Default)
		if def == "null" {
			def = "—"
		}
		rows = append(rows, []string{"  " + k.Key, k.Type, def, k.Valid, k.Doc})
	}
	return render.Table(w, []string{"  KEY", "TYPE", "DEFAULT", "VALID", "DOC"}, rows)
}

// LockOptions are `plugins lock`'s.
type LockOptions struct {
	F *cliutil.Factory
	// Dirs are the directories to lock; none: every plugin directory lemctl searches.
	Dirs []string
	// Lock, when set, is one lock file for every directory instead of DIR.lock beside each.
	Lock string
}

// NewCmdLock builds `plugins lock [DIR...]`; runF, when not nil, runs instead of lockRun (tests).
func NewCmdLock(f *cliutil.Factory, runF func(*LockOptions) error) *cobra.Command {
	opts := &LockOptions{F: f}
	cmd := &cobra.Command{
		Use:   "lock [DIR...]",
		Args:  cobra.ArbitraryArgs,
		Short: "Pin the sha256 of every plugin binary in a lock file",
		Long: `Hash every lem-plugin-<name> executable (without running it) in the named directories, or
by default in every plugin directory lemctl searches, and write DIR.lock beside each directory
(bin/plugins → bin/plugins.lock), or one lock file with --lock FILE. Once a lock applies, lemctl
refuses to run a binary of that directory whose hash differs or that the lock does not list.
A world-writable directory is refused.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Dirs = args
			if runF != nil {
				return runF(opts)
			}
			return lockRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Lock, "lock", "", "write one lock file here for every directory instead of DIR.lock beside each")
	return cmd
}

// lockRun hashes the binaries without running them: it needs the search directories, not a
// catalog.
func lockRun(_ context.Context, opts *LockOptions) error {
	env, dirs := opts.F, opts.Dirs
	if len(dirs) == 0 {
		all, err := discovery.SearchDirs(discovery.OptionsFromEnv(env.PluginDirs, env.Executable, env.Logger))
		if err != nil {
			return cliutil.Usage(err)
		}
		for _, d := range all {
			if fi, err := os.Stat(d.Path); err == nil && fi.IsDir() {
				dirs = append(dirs, d.Path)
			}
		}
	}
	if len(dirs) == 0 {
		return cliutil.Usagef("no plugin directory to lock: name one, or use --plugin-dir or $%s", discovery.PathEnv)
	}
	for _, d := range dirs {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			return cliutil.Usagef("lock %s: not a directory", d)
		}
	}
	locked, err := discovery.LockDirs(dirs, opts.Lock)
	if err != nil {
		return cliutil.Failed(err)
	}
	var rows [][]string
	for _, l := range locked {
		for _, s := range l.Skipped {
			env.Logger.Warn("not locked", "file", s)
		}
		rows = append(rows, []string{l.File, fmt.Sprintf("%d plugin(s)", len(l.Entries))})
		for _, e := range l.Entries {
			rows = append(rows, []string{"  " + e.Name, e.SHA256, e.Path})
		}
	}
	return render.Table(env.Out, nil, rows)
}

func kindList(ks []sdk.Kind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ",")
}

func intList(vs []int) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = fmt.Sprint(v)
	}
	return strings.Join(s, ",")
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func lockFileNote(f string) string {
	if f == "" {
		return ""
	}
	return " (" + f + ")"
}
