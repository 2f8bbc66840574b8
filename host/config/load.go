package config

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"

	"github.com/lemctl/lemctl/host/dataset"
	"github.com/lemctl/lemctl/host/echo"
	"github.com/lemctl/lemctl/sdk"
)

// Sources of overridden values, as recorded in Config.Sources.
const (
	SourceSet     = "flag --set"
	SourceDataset = "flag -d"
	SourcePrompts = "flag -n"
	SourceCarbon  = "flag --carbon-intensity"
)

// Overrides are the command-line values that beat the file: -d, -n and --set.
type Overrides struct {
	// Dataset is -d (workload.dataset); "" leaves the file's value.
	Dataset string
	// Prompts is -n (workload.prompts); nil leaves the file's value.
	Prompts *int
	// CarbonIntensity is --carbon-intensity (energy.carbon_intensity_g_per_kwh); nil leaves the
	// file's value.
	CarbonIntensity *float64
	// Set are the --set arguments, "key.path=VALUE" with VALUE a TOML value, applied in order.
	Set []string
	// Values are dotted keys set to already-decoded TOML values (a study's point), applied in
	// order after Set; each records its own Source, which errors about the key name.
	Values []Setting
}

// Setting is a dotted key set to a decoded TOML value by something other than the file.
type Setting struct {
	Key    string // "workload.batch_size"
	Value  any    // a TOML value as BurntSushi/toml decodes it (int64, float64, string, …)
	Source string // where it comes from, e.g. "study.toml point p01"
}

// Options control Load.
type Options struct {
	// FS reads the config file and checks dataset paths. Nil: the operating system, with paths
	// as given (relative to the current directory).
	FS fs.FS
	// Overrides beat the file.
	Overrides Overrides
	// Configurer checks plugin tables with the installed plugins. Nil: plugin tables are not
	// checked (Config.PluginTablesChecked is false).
	Configurer PluginConfigurer
	// ResultsDir is where results go when repository.path is empty (--results-dir): the
	// repository plugin's table gets the path either way, so the table checked is the table run.
	ResultsDir string
}

// OSFS is an fs.FS over the operating system that accepts any path os.Open accepts (absolute,
// relative to the current directory, with ".."), unlike os.DirFS.
type OSFS struct{}

// Open opens name with os.Open.
func (OSFS) Open(name string) (fs.File, error) { return os.Open(name) }

// Stat stats name with os.Stat.
func (OSFS) Stat(name string) (fs.FileInfo, error) { return os.Stat(name) }

// MaxFileBytes is the largest config file lemctl reads (docs/config.md): an experiment file is a
// few KiB, so a larger one is a mistake (a dataset given as the config) and is refused before it
// is parsed or echoed.
const MaxFileBytes = 1 << 20

// tooLarge is the error of a config of size bytes (at least size when atLeast).
func tooLarge(name string, size int64, atLeast bool) Errors {
	what := fmt.Sprintf("%d bytes", size)
	if atLeast {
		what = "more than " + what
	}
	return Errors{{File: name, Message: fmt.Sprintf("the config is %s, over the limit of %d bytes (1 MiB) for a config file", what, MaxFileBytes),
		Valid: "an experiment file of at most 1 MiB (docs/config.md)"}}
}

// LoadFile reads and loads the config file name through opts.FS. A file over MaxFileBytes is
// refused unread.
func LoadFile(ctx context.Context, name string, opts Options) (*Config, error) {
	fsys := opts.FS
	if fsys == nil {
		fsys = OSFS{}
	}
	f, err := fsys.Open(name)
	if err != nil {
		return nil, Errors{{File: name, Message: "cannot read config: " + describeFSError(err)}}
	}
	defer f.Close()
	if info, err := f.Stat(); err == nil && info.Mode().IsRegular() && info.Size() > MaxFileBytes {
		return nil, tooLarge(name, info.Size(), false)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, Errors{{File: name, Message: "cannot read config: " + describeFSError(err)}}
	}
	if len(data) > MaxFileBytes {
		return nil, tooLarge(name, MaxFileBytes, true) // a pipe or a file still growing
	}
	return Load(ctx, name, data, opts)
}

// Load validates a config document (named name in messages) with opts' overrides and returns
// the effective config. An invalid config returns Errors with every problem found.
func Load(ctx context.Context, name string, data []byte, opts Options) (*Config, error) {
	if len(data) > MaxFileBytes {
		return nil, tooLarge(name, int64(len(data)), false)
	}
	if opts.FS == nil {
		opts.FS = OSFS{}
	}
	l := &loader{file: name, opts: opts, sources: map[string]string{}, vals: map[string]any{}, bad: map[string]bool{}}
	raw := map[string]any{}
	if _, err := toml.Decode(string(data), &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, Errors{{File: name, Line: pe.Position.Line, Message: "TOML syntax: " + pe.Message}}
		}
		return nil, Errors{{File: name, Message: "TOML: " + err.Error()}}
	}
	l.lines = indexKeyLines(data)
	l.applyOverrides(raw)
	cfg := l.validate(ctx, raw)
	if len(l.errs) > 0 {
		l.errs.sort()
		return nil, l.errs
	}
	return cfg, nil
}

type loader struct {
	file     string
	opts     Options
	lines    map[string]int
	sources  map[string]string
	vals     map[string]any  // canonical values by pathKey
	bad      map[string]bool // keys that had an error (no default is filled for them)
	errs     Errors
	warnings []string

	modelOpts, engineOpts, repoOpts map[string]any
	meterTables                     map[string]map[string]any
}

// sourceOf returns the command-line source of path or of a table above it.
func (l *loader) sourceOf(segs []string) string {
	for i := len(segs); i >= 1; i-- {
		if s, ok := l.sources[pathKey(segs[:i]...)]; ok {
			return s
		}
	}
	return ""
}

// lineOf returns the line of path or of the nearest table above it that has one.
func (l *loader) lineOf(segs []string) int {
	for i := len(segs); i >= 1; i-- {
		if n, ok := l.lines[pathKey(segs[:i]...)]; ok {
			return n
		}
	}
	return 0
}

func (l *loader) errAt(segs []string, msg, valid string) {
	e := &Error{File: l.file, Key: displayPath(segs...), Message: msg, Valid: valid}
	if src := l.sourceOf(segs); src != "" {
		e.Source = src
	} else {
		e.Line = l.lineOf(segs)
	}
	l.errs = append(l.errs, e)
	l.bad[pathKey(segs...)] = true
}

// applyOverrides writes -d, -n and --set into the raw document and records their sources.
func (l *loader) applyOverrides(raw map[string]any) {
	o := l.opts.Overrides
	if o.Dataset != "" {
		l.set(raw, []string{"workload", "dataset"}, o.Dataset, SourceDataset)
	}
	if o.Prompts != nil {
		l.set(raw, []string{"workload", "prompts"}, int64(*o.Prompts), SourcePrompts)
	}
	if o.CarbonIntensity != nil {
		l.set(raw, []string{"energy", "carbon_intensity_g_per_kwh"}, *o.CarbonIntensity, SourceCarbon)
	}
	for _, arg := range o.Set {
		segs, value, err := ParseSet(arg)
		if err != nil {
			l.errs = append(l.errs, &Error{Source: SourceSet + " " + echo.Quote(arg), Message: err.Error(),
				Valid: "key.path=VALUE with VALUE a TOML value, e.g. workload.batch_size=4 or 'launch.devices=[0, 1]'"})
			continue
		}
		l.set(raw, segs, value, SourceSet)
	}
	for _, v := range o.Values {
		segs, err := ParseKey(v.Key)
		if err != nil {
			l.errs = append(l.errs, &Error{Source: v.Source, Message: err.Error(), Valid: "a dotted key such as workload.batch_size"})
			continue
		}
		l.set(raw, segs, v.Value, v.Source)
	}
}

// ParseKey splits a dotted key ("energy.example-meter.power_w", quoted segments allowed) into
// its segments.
func ParseKey(key string) ([]string, error) {
	s := &keyScanner{src: []byte(key), line: 1, lines: map[string]int{}}
	segs, ok := s.key()
	s.skipSpace(false)
	if !ok || len(segs) == 0 || !s.eof() {
		return nil, fmt.Errorf("%s is not a dotted key", echo.Quote(key))
	}
	return segs, nil
}

func (l *loader) set(raw map[string]any, segs []string, value any, source string) {
	t := raw
	for i, s := range segs[:len(segs)-1] {
		next, ok := t[s]
		if !ok {
			m := map[string]any{}
			t[s] = m
			t = m
			continue
		}
		m, ok := next.(map[string]any)
		if !ok {
			l.errs = append(l.errs, &Error{Source: source, Key: displayPath(segs...),
				Message: fmt.Sprintf("cannot set: %s is a %s, not a table", displayPath(segs[:i+1]...), describe(next))})
			return
		}
		t = m
	}
	t[segs[len(segs)-1]] = value
	l.sources[pathKey(segs...)] = source
}

// ParseSet parses a --set argument "key.path=VALUE". VALUE is a TOML value (4, 1.5, true,
// "text", [0, 1], {a = 1}); a bare word that is not TOML (builtin, data/p.jsonl) is taken as a
// string.
func ParseSet(arg string) ([]string, any, error) {
	s := &keyScanner{src: []byte(arg), line: 1, lines: map[string]int{}}
	segs, ok := s.key()
	s.skipSpace(false)
	if !ok || len(segs) == 0 || s.peek(0) != '=' {
		return nil, nil, fmt.Errorf("%s is not key.path=VALUE", echo.Quote(arg))
	}
	value := strings.TrimSpace(arg[s.pos+1:])
	if value == "" {
		return nil, nil, fmt.Errorf("%s has no value after '='", echo.Quote(arg))
	}
	var doc map[string]any
	if _, err := toml.Decode("v = "+value, &doc); err == nil {
		return segs, doc["v"], nil
	} else if strings.ContainsAny(value, "\"'[]{}=\n") {
		var pe toml.ParseError
		msg := err.Error()
		if errors.As(err, &pe) {
			msg = pe.Message
		}
		return nil, nil, fmt.Errorf("value %s is not a TOML value: %s", echo.Value(value), echo.Value(msg))
	}
	return segs, value, nil
}

// describeFSError turns a file-system error into a short reason.
func describeFSError(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func (l *loader) validate(ctx context.Context, raw map[string]any) *Config {
	l.modelOpts, l.engineOpts, l.repoOpts = map[string]any{}, map[string]any{}, map[string]any{}
	l.meterTables = map[string]map[string]any{}
	l.walk(nil, raw)
	l.fillDefaults()
	l.crossChecks()
	if len(l.errs) == 0 {
		l.checkPlugins(ctx)
	}
	if len(l.errs) > 0 {
		return nil
	}
	cfg := l.build()
	cfg.File = l.file
	cfg.Sources = l.displaySources()
	cfg.Warnings = l.warnings
	cfg.PluginTablesChecked = l.opts.Configurer != nil
	cfg.PluginTables = pluginTables(l.uses())
	return cfg
}

func (l *loader) displaySources() map[string]string {
	out := make(map[string]string, len(l.sources))
	for k, v := range l.sources {
		out[displayPath(strings.Split(k, keySep)...)] = v
	}
	return out
}

// walk validates the table at prefix.
func (l *loader) walk(prefix []string, table map[string]any) {
	section := pathKey(prefix...)
	for _, k := range slices.Sorted(maps.Keys(table)) {
		v := table[k]
		segs := append(append([]string(nil), prefix...), k)
		if spec, ok := specByPath[pathKey(segs...)]; ok {
			canon, msg := spec.check(v)
			if msg != "" {
				l.errAt(segs, msg, spec.validDoc())
				continue
			}
			l.vals[pathKey(segs...)] = canon
			continue
		}
		if slices.Contains(subTables[section], k) {
			sub, ok := v.(map[string]any)
			if !ok {
				l.errAt(segs, fmt.Sprintf("wrong type: %s, want a table", describe(v)), "a table ["+displayPath(segs...)+"]")
				continue
			}
			l.walk(segs, sub)
			continue
		}
		if len(prefix) == 1 {
			switch prefix[0] {
			case "model":
				l.modelOpts[k] = v
				continue
			case "engine":
				l.engineOpts[k] = v
				continue
			case "repository":
				l.repoOpts[k] = v
				continue
			case "energy":
				if t, ok := v.(map[string]any); ok {
					l.meterTables[k] = t
					continue
				}
			}
		}
		l.unknown(prefix, k)
	}
}

// keysIn lists the names valid directly under prefix.
func keysIn(prefix []string) []string {
	var names []string
	for _, s := range schema {
		if len(s.path) == len(prefix)+1 && pathKey(s.path[:len(prefix)]...) == pathKey(prefix...) {
			names = append(names, s.path[len(prefix)])
		}
	}
	names = append(names, subTables[pathKey(prefix...)]...)
	sort.Strings(names)
	return names
}

func (l *loader) unknown(prefix []string, k string) {
	segs := append(append([]string(nil), prefix...), k)
	names := keysIn(prefix)
	msg := "unknown key"
	if near := sdk.Suggest(k, names); near != "" {
		msg += fmt.Sprintf("; did you mean %q?", displayPath(append(append([]string(nil), prefix...), near)...))
	} else if elsewhere := findElsewhere(k); elsewhere != "" {
		msg += fmt.Sprintf("; did you mean %q?", elsewhere)
	}
	if len(prefix) == 1 && prefix[0] == "energy" {
		msg += " (a meter's own keys go in a table [energy.<meter>])"
	}
	valid := "one of " + quoteList(names)
	if len(names) == 0 {
		valid = "no keys"
	}
	l.errAt(segs, msg, valid)
}

// findElsewhere returns the full path of a schema key or table named k in another section.
func findElsewhere(k string) string {
	for _, s := range schema {
		if s.path[len(s.path)-1] == k {
			return displayPath(s.path...)
		}
	}
	for sec, subs := range subTables {
		for _, sub := range subs {
			if sub == k && sec != "" {
				return displayPath(append(strings.Split(sec, keySep), sub)...)
			}
		}
	}
	return ""
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}

// fillDefaults fills every key that is neither set nor in error; a missing required key is an
// error.
func (l *loader) fillDefaults() {
	for i := range schema {
		s := &schema[i]
		k := pathKey(s.path...)
		if _, ok := l.vals[k]; ok || l.bad[k] {
			continue
		}
		switch {
		case s.required:
			l.errAt(s.path, "missing (required)", s.validDoc())
		case s.def != nil:
			l.vals[k] = s.def
		}
	}
	if _, ok := l.vals[pathKey("name")]; !ok && !l.bad[pathKey("name")] {
		l.vals[pathKey("name")] = defaultName(l.file)
	}
}

// defaultName derives the experiment name from the file name.
func defaultName(file string) string {
	base := path.Base(strings.ReplaceAll(file, "\\", "/"))
	base = strings.TrimSuffix(base, path.Ext(base))
	var b strings.Builder
	for _, r := range base {
		if r < 128 && isBareByte(byte(r)) || r == '.' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	name := strings.TrimLeft(b.String(), ".-_")
	if len(name) > 64 {
		name = name[:64]
	}
	if name == "" {
		name = "experiment"
	}
	return name
}

func (l *loader) has(segs ...string) bool { _, ok := l.vals[pathKey(segs...)]; return ok }

func (l *loader) str(segs ...string) string { s, _ := l.vals[pathKey(segs...)].(string); return s }

func (l *loader) int(segs ...string) int64 { i, _ := l.vals[pathKey(segs...)].(int64); return i }

func (l *loader) float(segs ...string) float64 { f, _ := l.vals[pathKey(segs...)].(float64); return f }

func (l *loader) bool(segs ...string) bool { b, _ := l.vals[pathKey(segs...)].(bool); return b }

// crossChecks validates relations between keys and the dataset.
func (l *loader) crossChecks() {
	if l.has("lifecycle", "warmup", "min_batches") && l.has("lifecycle", "warmup", "max_batches") {
		lo, hi := l.int("lifecycle", "warmup", "min_batches"), l.int("lifecycle", "warmup", "max_batches")
		if lo > hi {
			l.errAt(p("lifecycle", "warmup", "max_batches"), fmt.Sprintf("%d is below lifecycle.warmup.min_batches (%d)", hi, lo),
				fmt.Sprintf("an integer ≥ min_batches (%d)", lo))
		}
		if l.has("lifecycle", "warmup", "window") {
			if w := l.int("lifecycle", "warmup", "window"); w > hi {
				l.errAt(p("lifecycle", "warmup", "window"), fmt.Sprintf("%d is above lifecycle.warmup.max_batches (%d)", w, hi),
					fmt.Sprintf("an integer in [2, max_batches (%d)]", hi))
			}
		}
	}
	if l.has("energy", "carbon_intensity_source") && !l.has("energy", "carbon_intensity_g_per_kwh") {
		l.errAt(p("energy", "carbon_intensity_source"), "a source without energy.carbon_intensity_g_per_kwh: there is no intensity for it to describe",
			"set energy.carbon_intensity_g_per_kwh (or --carbon-intensity) too, or remove the source")
	}
	if l.has("workload", "min_window_s") && l.has("validity", "min_window_s") {
		if w, v := l.float("workload", "min_window_s"), l.float("validity", "min_window_s"); w < v {
			l.warnings = append(l.warnings, fmt.Sprintf("workload.min_window_s (%g s) is below validity.min_window_s (%g s): a window that short is marked window_too_short", w, v))
		}
	}
	if l.has("workload", "decoding", "greedy") && l.bool("workload", "decoding", "greedy") {
		for _, k := range []string{"temperature", "top_k", "top_p"} {
			if _, set := l.lines[pathKey("workload", "decoding", k)]; set || l.sources[pathKey("workload", "decoding", k)] != "" {
				l.warnings = append(l.warnings, fmt.Sprintf("workload.decoding.%s is ignored: decoding.greedy is true", k))
			}
		}
	}
	l.checkArrival()
	l.checkDataset()
	l.checkPrecision()
	if meters, ok := l.vals[pathKey("energy", "meters")].([]any); ok {
		listed := make([]string, 0, len(meters))
		for _, m := range meters {
			listed = append(listed, m.(string))
		}
		for _, name := range slices.Sorted(maps.Keys(l.meterTables)) {
			if !slices.Contains(listed, name) {
				valid := "a table named after a meter in energy.meters"
				if len(listed) > 0 {
					valid = "one of " + quoteList(listed)
				}
				l.errAt(p("energy", name), fmt.Sprintf("table for meter %s, which energy.meters does not list", echo.Quote(name)), valid)
			}
		}
	}
}

// explicit reports whether the file or the command line set the key (not its default).
func (l *loader) explicit(segs ...string) bool {
	_, inFile := l.lines[pathKey(segs...)]
	return inFile || l.sources[pathKey(segs...)] != ""
}

// checkArrival validates the keys of a constant or poisson load (docs/serving.md): rate is
// required, requests and duration_s exclude each other, and the keys that do not apply to the
// arrival chosen are warned about as ignored.
func (l *loader) checkArrival() {
	if !l.has("workload", "arrival") {
		return
	}
	arrival := l.str("workload", "arrival")
	open := arrival == "constant" || arrival == "poisson"
	if !open {
		for _, k := range []string{"rate", "max_concurrency", "requests", "duration_s"} {
			if l.explicit("workload", k) {
				l.warnings = append(l.warnings, fmt.Sprintf("workload.%s is ignored: workload.arrival is \"batch\" (static batches of workload.batch_size); set arrival = \"constant\" or \"poisson\" to use it", k))
			}
		}
		return
	}
	if !l.has("workload", "rate") && !l.bad[pathKey("workload", "rate")] {
		l.errAt(p("workload", "rate"), fmt.Sprintf("missing: workload.arrival = %q needs a target rate", arrival),
			"a number of requests per second > 0 (e.g. rate = 4.0)")
	}
	if l.int("workload", "requests") > 0 && l.float("workload", "duration_s") > 0 {
		l.errAt(p("workload", "duration_s"), fmt.Sprintf("%g s set together with workload.requests = %d: the load lasts for a number of requests or for a duration, not both",
			l.float("workload", "duration_s"), l.int("workload", "requests")),
			"0 (the load lasts for workload.requests), or remove workload.requests")
	}
	for _, k := range []string{"batch_size", "min_window_s"} {
		if l.explicit("workload", k) {
			l.warnings = append(l.warnings, fmt.Sprintf("workload.%s is ignored: workload.arrival is %q (max_concurrency bounds the requests in flight; requests or duration_s set the length)", k, arrival))
		}
	}
}

// checkPrecision: model.precision may not contradict a synthetic reference's precision suffix.
func (l *loader) checkPrecision() {
	prec, ref := l.str("model", "precision"), l.str("model", "ref")
	rest, ok := strings.CutPrefix(ref, "synthetic:")
	if !ok || prec == "" || prec == "auto" {
		return
	}
	name, _, _ := strings.Cut(rest, "?")
	named := suffixPrecision(name)
	if named == "" || named == prec {
		return
	}
	l.errAt(p("model", "precision"), fmt.Sprintf("%s conflicts with model.ref %s, whose preset %s is %s",
		echo.Quote(prec), echo.Quote(ref), echo.Quote(name), named),
		fmt.Sprintf("%s (what model.ref names), \"auto\", or a model.ref without a -q8/-q4 suffix", echo.Quote(named)))
}

func (l *loader) checkDataset() {
	dsKey := p("workload", "dataset")
	if !l.has(dsKey...) {
		return
	}
	src, err := dataset.ParseSource(l.str(dsKey...))
	if err != nil {
		l.errAt(dsKey, err.Error(), `"builtin", "synthetic:<input_tokens>" or a file path`)
		return
	}
	switch src.Kind {
	case dataset.SourceSynthetic:
		if l.has("workload", "prompts") && l.int("workload", "prompts") == 0 {
			l.errAt(p("workload", "prompts"), fmt.Sprintf("a synthetic dataset (%s) has no natural size: set the number of prompts", src.Name), "an integer in [1, 10000000]")
		}
	case dataset.SourceFile:
		if l.has("workload", "format") {
			if _, err := dataset.FormatOf(src.Path, l.str("workload", "format")); err != nil {
				l.errAt(dsKey, err.Error(), "a file ending in .jsonl, .ndjson, .json or .txt, or set workload.format")
				return
			}
		}
		name := src.Path
		info, err := fs.Stat(l.opts.FS, name)
		switch {
		case err != nil:
			l.errAt(dsKey, fmt.Sprintf("dataset file %s: %s", echo.Quote(name), describeFSError(err)),
				`"builtin", "synthetic:<input_tokens>" or a readable file (paths are relative to the current directory)`)
		case info.IsDir():
			l.errAt(dsKey, fmt.Sprintf("dataset %s is a directory", echo.Quote(name)), "a JSONL, JSON or text file")
		}
	}
}

// use is one section of the config that names a plugin: the plugin, the kind it serves there,
// the section's path (where its keys are reported), the key naming the plugin and the section's
// own keys for the plugin.
type use struct {
	plugin         string
	kind           sdk.Kind
	table, nameKey []string
	opts           map[string]any
}

// uses lists every section that names a plugin, in a fixed order: model, engine, repository,
// the listed meters, then meter tables of meters not listed.
func (l *loader) uses() []use {
	repoOpts := maps.Clone(l.repoOpts)
	if dir := l.resultsDir(); dir != "" {
		repoOpts["path"] = dir
	}
	out := []use{
		{l.str("model", "plugin"), sdk.KindLoader, p("model"), p("model", "plugin"), l.modelOpts},
		{l.str("engine", "plugin"), sdk.KindEngine, p("engine"), p("engine", "plugin"), l.engineOpts},
		{l.str("repository", "plugin"), sdk.KindRepository, p("repository"), p("repository", "plugin"), repoOpts},
	}
	meters, _ := l.vals[pathKey("energy", "meters")].([]any)
	listed := map[string]bool{}
	for _, m := range meters {
		name := m.(string)
		listed[name] = true
		table := l.meterTables[name]
		if table == nil {
			table = map[string]any{}
		}
		out = append(out, use{name, sdk.KindEnergy, p("energy", name), p("energy", "meters"), table})
	}
	for _, name := range slices.Sorted(maps.Keys(l.meterTables)) {
		if !listed[name] {
			out = append(out, use{name, sdk.KindEnergy, p("energy", name), p("energy", name), l.meterTables[name]})
		}
	}
	return out
}

// resultsDir is where the repository stores results: repository.path, else Options.ResultsDir,
// made absolute; "" when neither is set.
func (l *loader) resultsDir() string {
	dir := l.str("repository", "path")
	if dir == "" {
		dir = l.opts.ResultsDir
	}
	if dir == "" {
		return ""
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return dir
}

// pluginTables resolves the one table each plugin is configured with: the keys of every section
// that names it, merged (the onnx plugin, loader and engine, gets [model] and [engine] together),
// with the repository's path included.
func pluginTables(uses []use) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, u := range uses {
		out[u.plugin] = MergeTables(out[u.plugin], u.opts)
	}
	return out
}

// checkPlugins asks the configurer about every plugin the config names, all at once, each with
// its resolved table (the table it will run with), and reports each plugin's rejected keys once,
// under the section that gave the key.
func (l *loader) checkPlugins(ctx context.Context) {
	c := l.opts.Configurer
	if c == nil {
		return
	}
	uses := l.uses()
	tables := pluginTables(uses)
	type answer struct {
		errs []sdk.ConfigError
		err  error
	}
	answers := make([]answer, len(uses))
	var wg sync.WaitGroup
	for i, u := range uses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i].errs, answers[i].err = c.ConfigurePlugin(ctx, u.plugin, u.kind, tables[u.plugin])
		}()
	}
	wg.Wait()
	reported := map[string]bool{}
	for i, u := range uses {
		if answers[i].err != nil {
			l.pluginFailed(u, answers[i].err)
			continue
		}
		if reported[u.plugin] {
			continue
		}
		reported[u.plugin] = true
		for _, ce := range answers[i].errs {
			l.rejectedKey(sectionOf(uses, u, ce.Key), ce)
		}
	}
}

// sectionOf returns the use of first's plugin whose own keys hold key's first segment, else first.
func sectionOf(uses []use, first use, key string) use {
	top, _, _ := strings.Cut(key, ".")
	for _, u := range uses {
		if _, ok := u.opts[top]; ok && u.plugin == first.plugin {
			return u
		}
	}
	return first
}

func (l *loader) pluginFailed(u use, err error) {
	kind, plugin := u.kind, u.plugin
	var nie *PluginNotInstalledError
	switch {
	case errors.As(err, &nie):
		valid := "an installed " + string(kind) + " plugin"
		if len(nie.Installed) > 0 {
			valid = "one of " + quoteList(nie.Installed)
		}
		l.errAt(u.nameKey, nie.Error(), valid)
	case errors.Is(err, ErrPluginNotInstalled):
		l.errAt(u.nameKey, fmt.Sprintf("%s plugin %s is not installed", kind, echo.Quote(plugin)), "an installed "+string(kind)+" plugin")
	default:
		l.errAt(u.table, fmt.Sprintf("%s plugin %s could not check its table: %v", kind, echo.Quote(plugin), err), "")
	}
}

func (l *loader) rejectedKey(u use, ce sdk.ConfigError) {
	kind, plugin, table := u.kind, u.plugin, u.table
	segs := append(append([]string(nil), table...), strings.Split(ce.Key, ".")...)
	if ce.Key == "" {
		segs = table
	}
	msg := ce.Message
	if strings.HasPrefix(msg, "unknown key") && len(table) == 1 && !strings.Contains(msg, "did you mean") {
		if near := sdk.Suggest(ce.Key, keysIn(table)); near != "" {
			msg += fmt.Sprintf("; did you mean %q?", displayPath(table[0], near))
		} else if elsewhere := findElsewhere(ce.Key); elsewhere != "" {
			msg += fmt.Sprintf("; did you mean %q? (a key below a [table] header belongs to that table)", elsewhere)
		}
	}
	l.errAt(segs, fmt.Sprintf("%s (reported by %s plugin %s)", msg, kind, echo.Quote(plugin)), ce.Valid)
}

// DefaultValidity returns [validity] with the schema's defaults: the thresholds of a measurement
// that has no config (`lemctl measure`) or of a result that does not record them.
func DefaultValidity() Validity {
	l := &loader{vals: map[string]any{}}
	for i := range schema {
		if schema[i].def != nil {
			l.vals[pathKey(schema[i].path...)] = schema[i].def
		}
	}
	return l.build().Validity
}

// build turns the validated values into a Config.
func (l *loader) build() *Config {
	c := &Config{Name: l.str("name")}
	c.Model = Model{Plugin: l.str("model", "plugin"), Ref: PrecisionRef(l.str("model", "ref"), l.str("model", "precision")),
		Precision: l.str("model", "precision"), Options: l.modelOpts}
	c.Engine = Engine{Plugin: l.str("engine", "plugin"), Options: l.engineOpts}
	w := &c.Workload
	w.Dataset = l.str("workload", "dataset")
	w.Format = l.str("workload", "format")
	w.Column = l.str("workload", "column")
	w.Prompts = int(l.int("workload", "prompts"))
	w.Seed = uint64(l.int("workload", "seed"))
	w.Order = l.str("workload", "order")
	w.BatchSize = int(l.int("workload", "batch_size"))
	w.MaxInputTokens = int(l.int("workload", "max_input_tokens"))
	w.MaxNewTokens = int(l.int("workload", "max_new_tokens"))
	w.Repeats = int(l.int("workload", "repeats"))
	w.MinWindowS = l.float("workload", "min_window_s")
	w.Arrival = l.str("workload", "arrival")
	w.Rate = l.float("workload", "rate")
	w.MaxConcurrency = int(l.int("workload", "max_concurrency"))
	w.Requests = int(l.int("workload", "requests"))
	w.DurationS = l.float("workload", "duration_s")
	w.Decoding = Decoding{
		Greedy:      l.bool("workload", "decoding", "greedy"),
		Temperature: l.float("workload", "decoding", "temperature"),
		TopK:        int(l.int("workload", "decoding", "top_k")),
		TopP:        l.float("workload", "decoding", "top_p"),
		IgnoreEOS:   l.bool("workload", "decoding", "ignore_eos"),
	}
	switch d := l.vals[pathKey("launch", "devices")].(type) {
	case string:
		c.Launch.Devices = Devices{d}
	case []any:
		for _, e := range d {
			c.Launch.Devices = append(c.Launch.Devices, fmt.Sprint(e))
		}
	}
	c.Launch.ProcessesPerDevice = int(l.int("launch", "processes_per_device"))
	c.Launch.Threads = int(l.int("launch", "threads"))
	c.Launch.PinCPUs = l.bool("launch", "pin_cpus")
	c.Launch.StallTimeoutS = l.float("launch", "stall_timeout_s")
	c.Launch.CallTimeouts = CallTimeouts{
		ControlS:    l.float("launch", "call_timeouts", "control_s"),
		RepositoryS: l.float("launch", "call_timeouts", "repository_s"),
		LoadS:       l.float("launch", "call_timeouts", "load_s"),
		GenerateS:   l.float("launch", "call_timeouts", "generate_s"),
	}
	c.Launch.Launcher = l.str("launch", "launcher")
	c.Launch.Slurm = SlurmLaunch{Submit: l.bool("launch", "slurm", "submit"), Port: int(l.int("launch", "slurm", "port"))}
	c.Lifecycle = Lifecycle{
		BaselineS:    l.float("lifecycle", "baseline_s"),
		ThermalWaitS: l.float("lifecycle", "thermal_wait_s"),
		CooldownS:    l.float("lifecycle", "cooldown_s"),
		Warmup: Warmup{
			Mode:        l.str("lifecycle", "warmup", "mode"),
			Batches:     int(l.int("lifecycle", "warmup", "batches")),
			CVThreshold: l.float("lifecycle", "warmup", "cv_threshold"),
			MinBatches:  int(l.int("lifecycle", "warmup", "min_batches")),
			MaxBatches:  int(l.int("lifecycle", "warmup", "max_batches")),
			MaxS:        l.float("lifecycle", "warmup", "max_s"),
			Window:      int(l.int("lifecycle", "warmup", "window")),
		},
	}
	switch m := l.vals[pathKey("energy", "meters")].(type) {
	case string:
		c.Energy.Meters = Meters{Auto: true}
	case []any:
		c.Energy.Meters = Meters{Names: []string{}}
		for _, e := range m {
			c.Energy.Meters.Names = append(c.Energy.Meters.Names, e.(string))
		}
	}
	c.Energy.Interval = l.str("energy", "interval")
	if l.has("energy", "carbon_intensity_g_per_kwh") {
		c.Energy.CarbonIntensity = &Carbon{GPerKWh: l.float("energy", "carbon_intensity_g_per_kwh"), Source: l.str("energy", "carbon_intensity_source")}
	}
	c.Energy.Tables = l.meterTables
	c.Repository = Repository{Plugin: l.str("repository", "plugin"), Path: l.str("repository", "path"), Options: l.repoOpts}
	c.Validity = Validity{
		MinWindowS:          l.float("validity", "min_window_s"),
		MinCounterUpdates:   int(l.int("validity", "min_counter_updates")),
		TemperatureDriftC:   l.float("validity", "temperature_drift_c"),
		IntegrationMismatch: l.float("validity", "integration_mismatch"),
		MinWindowOverlap:    l.float("validity", "min_window_overlap"),
		MaxThrottleShare:    l.float("validity", "max_throttle_share"),
		MaxUncertainty:      l.float("validity", "max_uncertainty"),
		MaxErrorRate:        l.float("validity", "max_error_rate"),
	}
	return c
}

// closest returns the name within edit distance max(2, len/3) of key, or "".
