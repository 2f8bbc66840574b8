package sdk

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
)

// ServeOption changes how Serve runs.
type ServeOption func(*serveConfig)

type serveConfig struct {
	logger hclog.Logger
}

// parentPollFallback is how often Serve checks getppid where pidfd_open is missing (Linux
// before 5.3).
const parentPollFallback = 250 * time.Millisecond

// meterMaxProcs is the GOMAXPROCS a plugin that serves only energy runs with, unless the
// GOMAXPROCS environment variable is set. A meter does a few reads per tick, and its CPU time is
// mostly the Go runtime's wake-ups around each tick. With one P the runtime takes the P from the
// sampling thread while it waits for its tick and wakes another thread to hold it; with more
// than two there are only more threads to wake (docs/performance.md, "nvml sampler overhead").
const meterMaxProcs = 2

// WithLogger replaces the JSON logger on stderr that Serve builds by default.
func WithLogger(l hclog.Logger) ServeOption { return func(c *serveConfig) { c.logger = l } }

// Logger returns the logger plugins should use: hclog JSON on stderr, which the host forwards
// with the plugin's name. The level comes from $LEM_PLUGIN_LOG_LEVEL (default info).
func Logger(name string) hclog.Logger {
	level := hclog.LevelFromString(os.Getenv("LEM_PLUGIN_LOG_LEVEL"))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: level, Output: os.Stderr, JSONFormat: true})
}

// Serve runs p as a plugin process until the host closes it. It never returns normally. It writes
// nothing to stdout but go-plugin's handshake line, speaks gRPC only, raises the message limits,
// and exits when the process that started it dies (a parent-death signal, and a pidfd of the
// parent as the backstop, because go-plugin does neither by itself). A plugin that serves only
// energy runs with GOMAXPROCS 2 (see meterMaxProcs).
func Serve(p *Plugin, opts ...ServeOption) {
	if err := p.check(); err != nil {
		fmt.Fprintf(os.Stderr, "lemctl plugin: %v\n", err)
		os.Exit(1)
	}
	var cfg serveConfig
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = Logger(p.Name)
	}
	if os.Getenv(Handshake.MagicCookieKey) != Handshake.MagicCookieValue {
		fmt.Fprintf(os.Stderr, "%s is a lemctl plugin (%s): lemctl starts it; it is not run by hand.\nTry: lemctl plugins describe %s\n",
			os.Args[0], kindList(p.Kinds()), p.Name)
		os.Exit(1)
	}
	if k := p.Kinds(); len(k) == 1 && k[0] == KindEnergy {
		if _, set := os.LookupEnv("GOMAXPROCS"); !set && runtime.GOMAXPROCS(0) > meterMaxProcs {
			runtime.GOMAXPROCS(meterMaxProcs)
		}
	}
	watchParent(parentPollFallback, cfg.logger)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{APIVersion: ServerPlugins(p)},
		GRPCServer: func(o []grpc.ServerOption) *grpc.Server {
			o = append(o, grpc.MaxRecvMsgSize(MaxMessageBytes), grpc.MaxSendMsgSize(MaxMessageBytes))
			return grpc.NewServer(o...)
		},
		Logger: cfg.logger,
	})
	os.Exit(0)
}

// check rejects a Plugin that cannot be served.
func (p *Plugin) check() error {
	if p == nil {
		return fmt.Errorf("Serve called with a nil Plugin")
	}
	if p.Name == "" || strings.ContainsAny(p.Name, "/ \t\n") {
		return fmt.Errorf("plugin name %q must be non-empty and contain no spaces or slashes", p.Name)
	}
	if len(p.Kinds()) == 0 {
		return fmt.Errorf("plugin %q implements no kind: set at least one of Loader, Engine, Energy, Repository", p.Name)
	}
	seen := map[string]bool{}
	for _, k := range p.Schema {
		if k.Key == "" || seen[k.Key] {
			return fmt.Errorf("plugin %q: config schema key %q is empty or repeated", p.Name, k.Key)
		}
		seen[k.Key] = true
	}
	return nil
}

func kindList(ks []Kind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// ServerPlugins is the go-plugin set a plugin process serves: the common service and one entry
// per kind p implements. Serve uses it; in-process tests (sdk/plugintest) use it too.
func ServerPlugins(p *Plugin) plugin.PluginSet {
	set := plugin.PluginSet{dispenseBase: baseService(p)}
	if p.Loader != nil {
		set[dispenseLoader] = loaderService(p.Loader)
	}
	if p.Engine != nil {
		set[dispenseEngine] = engineService(p.Engine)
	}
	if p.Energy != nil {
		set[dispenseEnergy] = energyService(p.Energy)
	}
	if p.Repository != nil {
		set[dispenseRepository] = repositoryService(p.Repository)
	}
	return set
}

// ClientPlugins is the go-plugin set the host dispenses from.
func ClientPlugins() plugin.PluginSet {
	return plugin.PluginSet{
		dispenseBase:       baseService(nil),
		dispenseLoader:     loaderService(nil),
		dispenseEngine:     engineService(nil),
		dispenseEnergy:     energyService(nil),
		dispenseRepository: repositoryService(nil),
	}
}

// watchParent makes the process exit when its parent dies: PR_SET_PDEATHSIG as the fast path
// (the kernel sends SIGTERM when the thread that forked us exits), and, for the cases the signal
// misses (the forking thread is not the one that lives longest), a pidfd of the parent that one
// blocked thread waits on — no wake-ups while the parent lives, which matters to a meter. Where
// pidfd_open is missing, a poll of getppid every poll interval stands in.
func watchParent(poll time.Duration, log hclog.Logger) {
	ppid := os.Getppid()
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGTERM), 0, 0, 0)
	pidfd, pidfdErr := unix.PidfdOpen(ppid, 0)
	// Checked after opening the pidfd: if the parent was still our parent then, the pidfd is
	// the parent's and not a reused pid's.
	if ppid == 1 || os.Getppid() != ppid {
		log.Error("parent process already gone; exiting")
		os.Exit(1)
	}
	exit := func() {
		log.Warn("parent process died; exiting", "parent_pid", ppid)
		os.Exit(1)
	}
	if pidfdErr == nil {
		go func() {
			fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
			for {
				n, err := unix.Poll(fds, -1)
				if n > 0 || (err != nil && err != unix.EINTR) {
					break
				}
			}
			if os.Getppid() != ppid {
				exit()
			}
			pollParent(ppid, poll, exit) // poll failed without the parent dying: keep watching
		}()
		return
	}
	go pollParent(ppid, poll, exit)
}

func pollParent(ppid int, poll time.Duration, exit func()) {
	for range time.Tick(poll) {
		if os.Getppid() != ppid {
			exit()
		}
	}
}
