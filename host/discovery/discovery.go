package discovery

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/hostclient"
)

// FilePrefix starts the file name of every plugin binary: lem-plugin-<name>.
const FilePrefix = "lem-plugin-"

// PathEnv is the environment variable holding extra plugin directories, colon-separated.
const PathEnv = "LEM_PLUGIN_PATH"

// DefaultStartTimeout bounds the time from exec to a completed handshake.
const DefaultStartTimeout = 10 * time.Second

// Source says where a plugin directory came from; it decides precedence.
type Source string

// The sources, in search order.
const (
	SourceFlag Source = "--plugin-dir"
	SourceEnv  Source = "$" + PathEnv
	SourceExe  Source = "<dir of lemctl>/plugins"
)

// Options configures Discover.
type Options struct {
	// Dirs are the --plugin-dir directories, in order. Each must exist. A plugin found here wins
	// over every plugin of the same name found elsewhere.
	Dirs []string
	// PluginPath is the value of $LEM_PLUGIN_PATH (colon-separated). Relative and empty entries
	// are ignored: they would load plugins from the working directory.
	PluginPath string
	// Executable is the lemctl binary; <its dir>/plugins is searched last. Empty: not searched.
	Executable string
	// LockFile, when set, is the lock that applies to every directory (`--lock FILE`); without
	// it, a directory DIR is locked by DIR.lock when that file exists.
	LockFile string
	// CacheDir holds the Info cache (CacheFileName). Empty means DefaultCacheDir(); NoCache
	// turns the cache off.
	CacheDir string
	NoCache  bool
	// StartTimeout bounds each plugin's start and handshake (default DefaultStartTimeout).
	StartTimeout time.Duration
	// Parallel is how many candidates are started at once (default 8).
	Parallel int
	// Env adds KEY=VALUE entries to every plugin's environment.
	Env []string
	// Logger receives discovery's logs and, named after each plugin, the plugins' stderr.
	Logger hclog.Logger
}

// OptionsFromEnv returns Options for the usual sources: the given --plugin-dir directories,
// $LEM_PLUGIN_PATH from the environment and the directory of executable.
func OptionsFromEnv(dirs []string, executable string, log hclog.Logger) Options {
	return Options{Dirs: dirs, PluginPath: os.Getenv(PathEnv), Executable: executable, Logger: log}
}

// Dir is one searched directory.
type Dir struct {
	Path   string
	Source Source
	// Exists is false for a $LEM_PLUGIN_PATH or <dir of lemctl>/plugins directory that is not
	// there (not an error).
	Exists bool
	// Lock is the lock file that applies to the directory, "" when none.
	Lock string
	// Problem, when set, refuses every plugin in the directory (world-writable, unreadable lock).
	Problem string
}

// LockStatus is how a plugin binary relates to the lock that applies to it.
type LockStatus string

// Lock statuses.
const (
	LockNone     LockStatus = "unlocked" // no lock applies
	LockOK       LockStatus = "locked"   // the lock pins this binary and its sha256 matches
	LockMismatch LockStatus = "mismatch" // the sha256 differs from the lock: refused
	LockUnlisted LockStatus = "unlisted" // a lock applies but does not list it: refused
)

// Plugin is one candidate binary and what discovery learnt about it.
type Plugin struct {
	// Name comes from the file name (lem-plugin-<name>); a healthy plugin's Info says the same.
	Name   string
	Path   string // absolute
	Dir    string
	Source Source
	// Info is what the plugin answered (zero when it never answered).
	Info sdk.Info
	// APIVersion is the newest protocol version both sides speak (0 when none).
	APIVersion int
	// SHA256 of the binary (hex); "" when it could not be read.
	SHA256   string
	Lock     LockStatus
	LockFile string
	// Available is true when the plugin answered, passed every check and can be used.
	Available bool
	// Selected is true for the one plugin of each name that lemctl uses.
	Selected bool
	// Reason says why the plugin is not available, or which plugin shadows it.
	Reason string
	// Err is the cause when not Available (nil for a shadowed plugin).
	Err error
	// Cached is true when Info came from the cache rather than from starting the plugin.
	Cached bool

	size    int64
	mtimeNs int64
	order   int
}

// Catalog is the result of a discovery: every searched directory, every candidate, and for each
// plugin name the one selected. It opens plugins for the rest of the host; Close kills every
// process it opened that is still running.
type Catalog struct {
	Dirs []Dir
	// Candidates lists every lem-plugin-* file found, in search order.
	Candidates []*Plugin
	// Warnings are the shadowing and configuration warnings that were also logged.
	Warnings []string

	log          hclog.Logger
	startTimeout time.Duration
	env          []string
	locks        map[string]*Lock
	trust        trust

	mu     sync.Mutex
	open   []*hostclient.Client
	tails  tails // the stderr tail of each opened client, for Explain
	closed bool
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Discover searches the plugin directories, starts and probes every candidate not answered from
// the cache, and selects one plugin per name. Bad candidates never fail it: each is in
// Candidates with Available false and a Reason naming the cause. It fails only on bad usage: a
// --plugin-dir that is not a directory, or an explicit lock file that cannot be read.
func Discover(ctx context.Context, opts Options) (*Catalog, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 8
	}
	cat := &Catalog{log: opts.Logger, startTimeout: opts.StartTimeout, env: opts.Env, locks: map[string]*Lock{}, trust: osTrust()}

	var explicit *Lock
	if opts.LockFile != "" {
		l, err := ReadLock(opts.LockFile)
		if err != nil {
			return nil, err
		}
		explicit = l
	}
	dirs, err := SearchDirs(opts)
	if err != nil {
		return nil, err
	}
	for _, d := range dirs {
		cands, err := cat.scanDir(&d, explicit)
		if err != nil {
			return nil, err
		}
		cat.Dirs = append(cat.Dirs, d)
		cat.Candidates = append(cat.Candidates, cands...)
	}
	for i, c := range cat.Candidates {
		c.order = i
	}

	cacheDir := opts.CacheDir
	if cacheDir == "" {
		cacheDir = DefaultCacheDir()
	}
	cachePath := ""
	if !opts.NoCache && cacheDir != "" {
		cachePath = filepath.Join(cacheDir, CacheFileName)
	}
	cache, err := loadCache(cachePath)
	if err != nil {
		opts.Logger.Debug("plugin info cache ignored", "error", err)
	}

	sem := make(chan struct{}, opts.Parallel)
	var wg sync.WaitGroup
	for _, c := range cat.Candidates {
		if c.Err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				c.fail(fmt.Errorf("not started: %w", ctx.Err()))
				return
			}
			defer func() { <-sem }()
			cat.evaluate(ctx, c, cache)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("plugin discovery interrupted: %w", err)
	}
	if err := cache.save(); err != nil {
		opts.Logger.Warn("plugin info cache not saved", "error", err)
	}
	cat.selectPlugins()
	for _, c := range cat.Candidates {
		if c.Err != nil {
			opts.Logger.Debug("plugin unavailable", "path", c.Path, "reason", c.Reason)
		}
	}
	return cat, nil
}

// SearchDirs lists the directories Discover searches for opts, in precedence order, each once
// (Exists is set by Discover). It fails when a --plugin-dir is not a directory.
func SearchDirs(opts Options) ([]Dir, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	var dirs []Dir
	seen := map[string]bool{}
	add := func(p string, src Source) {
		p = filepath.Clean(p)
		if !seen[p] {
			seen[p] = true
			dirs = append(dirs, Dir{Path: p, Source: src})
		}
	}
	for _, d := range opts.Dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, fmt.Errorf("--plugin-dir %s: %w", d, err)
		}
		fi, err := os.Stat(abs)
		if err != nil {
			return nil, fmt.Errorf("--plugin-dir %s: %w", d, err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("--plugin-dir %s: not a directory", d)
		}
		add(abs, SourceFlag)
	}
	for _, d := range strings.Split(opts.PluginPath, ":") {
		switch {
		case d == "":
			// An empty entry means the working directory in $PATH; never here.
		case !filepath.IsAbs(d):
			opts.Logger.Warn("relative $"+PathEnv+" entry ignored (it would load plugins from the working directory)", "entry", d)
		default:
			add(d, SourceEnv)
		}
	}
	if opts.Executable != "" {
		add(filepath.Join(filepath.Dir(opts.Executable), "plugins"), SourceExe)
	}
	return dirs, nil
}

// scanDir lists the lem-plugin-* files of d and applies the directory-wide checks: existence,
// ownership and writability of it and its parents (trust.checkDir) and the lock.
func (cat *Catalog) scanDir(d *Dir, explicit *Lock) ([]*Plugin, error) {
	fi, err := os.Stat(d.Path)
	if err != nil || !fi.IsDir() {
		cat.log.Debug("plugin directory not searched", "dir", d.Path, "source", d.Source, "error", err)
		return nil, nil
	}
	d.Exists = true
	dirErr := cat.trust.checkDir(d.Path)
	lock := explicit
	if lock == nil {
		lp := DirLockPath(d.Path)
		if _, err := os.Stat(lp); err == nil {
			l, err := ReadLock(lp)
			if err != nil && dirErr == nil {
				dirErr = fmt.Errorf("lock file %s applies to %s but cannot be used; refused: %w", lp, d.Path, err)
			}
			lock = l
			d.Lock = lp
		}
	} else {
		d.Lock = explicit.File
	}
	if lock != nil {
		cat.locks[d.Path] = lock
	}
	if dirErr != nil {
		d.Problem = dirErr.Error()
	}
	entries, err := os.ReadDir(d.Path)
	if err != nil {
		if d.Source == SourceFlag {
			return nil, fmt.Errorf("--plugin-dir %s: %w", d.Path, err)
		}
		cat.log.Warn("plugin directory unreadable", "dir", d.Path, "error", err)
		return nil, nil
	}
	var out []*Plugin
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), FilePrefix) {
			cat.log.Debug("not a plugin (name does not start with "+FilePrefix+")", "path", filepath.Join(d.Path, e.Name()))
			continue
		}
		p := &Plugin{
			Name:     strings.TrimPrefix(e.Name(), FilePrefix),
			Path:     filepath.Join(d.Path, e.Name()),
			Dir:      d.Path,
			Source:   d.Source,
			Lock:     LockNone,
			LockFile: d.Lock,
		}
		if lock != nil {
			p.Lock = LockUnlisted
		}
		switch {
		case dirErr != nil:
			p.fail(dirErr)
		case !validName.MatchString(p.Name):
			p.fail(fmt.Errorf("invalid plugin file name %q: after %q a name needs letters, digits, '.', '_' or '-', starting with a letter or digit", e.Name(), FilePrefix))
		}
		out = append(out, p)
	}
	return out, nil
}

// fail marks p unavailable because of err.
func (p *Plugin) fail(err error) {
	p.Available = false
	p.Err = err
	p.Reason = err.Error()
}

// evaluate runs the per-binary checks on c, then answers it from the cache or by starting it.
func (cat *Catalog) evaluate(ctx context.Context, c *Plugin, cache *infoCache) {
	fi, err := os.Stat(c.Path)
	if err != nil {
		c.fail(fmt.Errorf("cannot stat: %w", err))
		return
	}
	switch {
	case fi.IsDir():
		c.fail(errors.New("is a directory, not an executable file"))
		return
	case !fi.Mode().IsRegular():
		c.fail(fmt.Errorf("is not a regular file (mode %s)", fi.Mode()))
		return
	case fi.Mode().Perm()&0o111 == 0:
		c.fail(fmt.Errorf("is not executable (mode %04o). Fix: chmod +x %s", fi.Mode().Perm(), c.Path))
		return
	case fi.Mode().Perm()&0o002 != 0:
		c.fail(fmt.Errorf("is world-writable (mode %04o), so anyone could replace it; refused. Fix: chmod o-w %s", fi.Mode().Perm(), c.Path))
		return
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if err := cat.trust.checkBinary(c.Path, int(st.Uid)); err != nil {
			c.fail(err)
			return
		}
	}
	c.size, c.mtimeNs = fi.Size(), fi.ModTime().UnixNano()

	var checksum []byte
	if lock := cat.locks[c.Dir]; lock != nil {
		sum, err := cat.checkLock(c, lock)
		if err != nil {
			c.fail(err)
			return
		}
		checksum = sum
	}
	if e, ok := cache.get(c.Path, c.size, c.mtimeNs); ok && (c.SHA256 == "" || c.SHA256 == e.SHA256) {
		c.Info, c.Cached, c.SHA256 = e.Info, true, e.SHA256
		if err := checkInfo(c); err != nil {
			c.fail(err)
			return
		}
		c.Available = true
		return
	}
	if c.SHA256 == "" {
		if c.SHA256, err = fileSHA256(c.Path); err != nil {
			c.fail(fmt.Errorf("cannot read: %w", err))
			return
		}
	}
	if err := cat.probe(ctx, c, checksum); err != nil {
		cache.drop(c.Path)
		c.fail(err)
		return
	}
	cache.put(c.Path, cacheEntry{Size: c.size, ModTimeNs: c.mtimeNs, SHA256: c.SHA256, Info: c.Info})
	c.Available = true
}

// checkLock hashes c and compares it with the lock; it returns the pinned sum for go-plugin's
// SecureConfig, or the reason the binary is refused before it runs.
func (cat *Catalog) checkLock(c *Plugin, lock *Lock) ([]byte, error) {
	sum, err := fileSHA256(c.Path)
	if err != nil {
		return nil, fmt.Errorf("cannot read: %w", err)
	}
	c.SHA256 = sum
	want, ok := lock.Sum(c.Path)
	if !ok {
		c.Lock = LockUnlisted
		return nil, fmt.Errorf("%w: not listed in lock file %s, which applies to %s; refused before running. If you trust it: lemctl plugins lock", ErrLockMismatch, lock.File, c.Dir)
	}
	if want != sum {
		c.Lock = LockMismatch
		return nil, fmt.Errorf("%w: sha256 %s differs from %s pinned in %s; refused before running. If you trust the new binary: lemctl plugins lock", ErrLockMismatch, sum, want, lock.File)
	}
	c.Lock = LockOK
	return hex.DecodeString(sum)
}

// checkInfo applies the checks on a plugin's answer: its name, a common API version, its kinds.
func checkInfo(c *Plugin) error {
	i := c.Info
	if i.Name != c.Name {
		return fmt.Errorf("calls itself %q but its file is named %s%s; rename it %s%s", i.Name, FilePrefix, c.Name, FilePrefix, i.Name)
	}
	c.APIVersion = commonAPIVersion(i.APIVersions)
	if c.APIVersion == 0 {
		return noCommonAPI(i.APIVersions)
	}
	if len(i.Kinds) == 0 {
		return errors.New("serves no plugin kind")
	}
	for _, k := range i.Kinds {
		if !slices.Contains(sdk.AllKinds, k) {
			return fmt.Errorf("claims kind %q, which this lemctl does not know (known: %v)", k, sdk.AllKinds)
		}
	}
	return nil
}

// ErrNoCommonAPIVersion is matched (errors.Is) by the error for a plugin that speaks no protocol
// version this lemctl speaks.
var ErrNoCommonAPIVersion = errors.New("no common API version")

func noCommonAPI(plugin []int) error {
	return fmt.Errorf("%w (plugin speaks %v, lemctl speaks %v)", ErrNoCommonAPIVersion, plugin, sdk.SupportedAPIVersions)
}

// commonAPIVersion returns the newest version in both lists, or 0.
func commonAPIVersion(plugin []int) int {
	best := 0
	for _, v := range plugin {
		if slices.Contains(sdk.SupportedAPIVersions, v) && v > best {
			best = v
		}
	}
	return best
}

// selectPlugins picks one available plugin per name: the first found in a --plugin-dir, else
// the highest version (the earliest found on a tie), and records what each one shadows.
func (cat *Catalog) selectPlugins() {
	byName := map[string][]*Plugin{}
	var names []string
	for _, c := range cat.Candidates {
		if !c.Available {
			continue
		}
		if byName[c.Name] == nil {
			names = append(names, c.Name)
		}
		byName[c.Name] = append(byName[c.Name], c)
	}
	for _, name := range names {
		cands := byName[name]
		win := cands[0]
		if win.Source != SourceFlag {
			for _, c := range cands[1:] {
				if compareVersions(c.Info.Version, win.Info.Version) > 0 {
					win = c
				}
			}
		}
		win.Selected = true
		for _, c := range cands {
			if c == win {
				continue
			}
			why := "higher version"
			if win.Source == SourceFlag {
				why = "--plugin-dir wins"
			}
			c.Reason = fmt.Sprintf("shadowed by %s (version %s, %s: %s)", win.Path, win.Info.Version, win.Source, why)
			msg := fmt.Sprintf("plugin %q: using %s (version %s, from %s); it shadows %s (version %s, from %s)",
				name, win.Path, win.Info.Version, win.Source, c.Path, c.Info.Version, c.Source)
			cat.Warnings = append(cat.Warnings, msg)
			cat.log.Warn(msg)
		}
	}
	for _, c := range cat.Candidates {
		if c.Err == nil {
			continue
		}
		if w := cat.selected(c.Name); w != nil {
			msg := fmt.Sprintf("plugin %q: %s is unusable (%s); using %s instead", c.Name, c.Path, c.Reason, w.Path)
			cat.Warnings = append(cat.Warnings, msg)
			cat.log.Warn(msg)
		}
	}
}

func (cat *Catalog) selected(name string) *Plugin {
	for _, c := range cat.Candidates {
		if c.Selected && c.Name == name {
			return c
		}
	}
	return nil
}

// Plugins returns the selected plugins (one per name), sorted by name.
func (cat *Catalog) Plugins() []*Plugin {
	var out []*Plugin
	for _, c := range cat.Candidates {
		if c.Selected {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Problems returns the candidates that cannot be used, in search order.
func (cat *Catalog) Problems() []*Plugin {
	var out []*Plugin
	for _, c := range cat.Candidates {
		if c.Err != nil {
			out = append(out, c)
		}
	}
	return out
}

// Find returns the selected plugin called name.
func (cat *Catalog) Find(name string) (*Plugin, bool) {
	p := cat.selected(name)
	return p, p != nil
}

// ByKind returns the selected plugins that serve kind, sorted by name.
func (cat *Catalog) ByKind(kind sdk.Kind) []*Plugin {
	var out []*Plugin
	for _, p := range cat.Plugins() {
		if p.Info.Serves(kind) {
			out = append(out, p)
		}
	}
	return out
}

// Searched lists the directories that were searched, each with its source, for messages.
func (cat *Catalog) Searched() []string {
	out := make([]string, 0, len(cat.Dirs))
	for _, d := range cat.Dirs {
		s := d.Path + " (" + string(d.Source) + ")"
		if !d.Exists {
			s = d.Path + " (" + string(d.Source) + ", absent)"
		}
		out = append(out, s)
	}
	return out
}
