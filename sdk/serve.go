package sdk

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"

	"github.com/lemctl/lemctl/sdk/internal/wire"
)

// ServeOption changes how Serve runs.
type ServeOption func(*serveConfig)

type serveConfig struct {
	logger   hclog.Logger
	listener net.Listener
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

// WithListener serves the plugin on l, inside the calling process, instead of as a plugin
// process: no handshake, no cookie check, no watch of the parent. Run then returns once l is
// closed. It is how a plugin is tested without building its binary (sdk/plugintest, and
// sdk/hostclient.InProcess, which connects the host's client to it). The gRPC default message
// limit of 4 MiB is kept on this path, so a payload the sdk failed to chunk fails in tests
// instead of passing under a plugin process's 256 MiB limit.
func WithListener(l net.Listener) ServeOption { return func(c *serveConfig) { c.listener = l } }

// Logger returns the logger plugins should use: hclog JSON on stderr, which the host forwards
// with the plugin's name. The level comes from $LEM_PLUGIN_LOG_LEVEL (default info).
func Logger(name string) hclog.Logger {
	level := hclog.LevelFromString(os.Getenv("LEM_PLUGIN_LOG_LEVEL"))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: level, Output: os.Stderr, JSONFormat: true})
}

// Serve runs p as a plugin process until the host closes it, then exits the process. It exits
// with status 1, after saying why on stderr, where Run returns an error. It writes nothing to
// stdout but go-plugin's handshake line, speaks gRPC only, raises the message limits, and exits
// when the process that started it dies (a parent-death signal, and a pidfd of the parent as the
// backstop, because go-plugin does neither by itself). A plugin that serves only energy runs
// with GOMAXPROCS 2 (see meterMaxProcs).
func Serve(p *Plugin, opts ...ServeOption) {
	if err := Run(p, opts...); err != nil {
		fmt.Fprintf(os.Stderr, "lemctl plugin: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Run is Serve without the exit: it returns nil once the host has closed the plugin (or, with
// WithListener, once the listener is closed), and an error instead of serving when p breaks a
// rule of Plugin, when the process was not started by lemctl (no handshake cookie in its
// environment), or when its parent is already gone.
func Run(p *Plugin, opts ...ServeOption) error {
	if err := p.check(); err != nil {
		return err
	}
	var cfg serveConfig
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.listener != nil {
		return serveListener(p, cfg.listener)
	}
	if cfg.logger == nil {
		cfg.logger = Logger(p.Name)
	}
	if os.Getenv(wire.Handshake.MagicCookieKey) != wire.Handshake.MagicCookieValue {
		return fmt.Errorf("%s is a lemctl plugin (%s): lemctl starts it; it is not run by hand.\nTry: lemctl plugins describe %s",
			os.Args[0], kindList(p.Kinds()), p.Name)
	}
	if k := p.Kinds(); len(k) == 1 && k[0] == KindEnergy {
		if _, set := os.LookupEnv("GOMAXPROCS"); !set && runtime.GOMAXPROCS(0) > meterMaxProcs {
			runtime.GOMAXPROCS(meterMaxProcs)
		}
	}
	if err := watchParent(parentPollFallback, cfg.logger); err != nil {
		return err
	}
	set := plugin.PluginSet{}
	for name, s := range services(p) {
		set[name] = s
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  wire.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{APIVersion: set},
		GRPCServer: func(o []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(o, wire.ServerOptions()...)...)
		},
		Logger: cfg.logger,
	})
	return nil
}

// serveListener serves p's services on l until l is closed.
func serveListener(p *Plugin, l net.Listener) error {
	srv := grpc.NewServer()
	for _, s := range services(p) {
		s.Register(srv)
	}
	err := srv.Serve(l)
	srv.Stop()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
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
	interval := ""
	for _, k := range p.Schema {
		if k.Key == "" || seen[k.Key] {
			return fmt.Errorf("plugin %q: config schema key %q is empty or repeated", p.Name, k.Key)
		}
		seen[k.Key] = true
		if !k.SamplingInterval {
			continue
		}
		switch {
		case p.Energy == nil:
			return fmt.Errorf("plugin %q: config schema key %q is marked SamplingInterval, but the plugin serves no energy kind", p.Name, k.Key)
		case k.Type != TypeDuration:
			return fmt.Errorf("plugin %q: config schema key %q is marked SamplingInterval but has type %s (valid: %s)", p.Name, k.Key, k.Type, TypeDuration)
		case interval != "":
			return fmt.Errorf("plugin %q: config schema keys %q and %q are both marked SamplingInterval (valid: at most one)", p.Name, interval, k.Key)
		}
		interval = k.Key
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

// watchParent makes the process exit when its parent dies: PR_SET_PDEATHSIG as the fast path
// (the kernel sends SIGTERM when the thread that forked us exits), and, for the cases the signal
// misses (the forking thread is not the one that lives longest), a pidfd of the parent that one
// blocked thread waits on — no wake-ups while the parent lives, which matters to a meter. Where
// pidfd_open is missing, a poll of getppid every poll interval stands in. It returns an error,
// and watches nothing, when the parent is already gone.
func watchParent(poll time.Duration, log hclog.Logger) error {
	ppid := os.Getppid()
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGTERM), 0, 0, 0)
	pidfd, pidfdErr := unix.PidfdOpen(ppid, 0)
	// Checked after opening the pidfd: if the parent was still our parent then, the pidfd is
	// the parent's and not a reused pid's.
	if ppid == 1 || os.Getppid() != ppid {
		if pidfdErr == nil {
			_ = unix.Close(pidfd)
		}
		return errors.New("the process that started this plugin is already gone")
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
		return nil
	}
	go pollParent(ppid, poll, exit)
	return nil
}

func pollParent(ppid int, poll time.Duration, exit func()) {
	for range time.Tick(poll) {
		if os.Getppid() != ppid {
			exit()
		}
	}
}
