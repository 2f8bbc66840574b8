package hostclient

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/internal/wire"
)

// Client is the host's handle on one running plugin (a process, or one served in-process). Its kind accessors return nil for
// kinds the plugin does not serve. Close kills the process; it is safe to call more than once.
type Client struct {
	info       sdk.Info
	base       *baseClient
	loader     sdk.Loader
	engine     sdk.Engine
	meter      sdk.Meter
	repository sdk.Repository
	pid        int
	path       string
	closeOnce  sync.Once
	closeFn    func()
	exited     func() bool // nil for an in-process plugin
	timeouts   atomic.Pointer[CallTimeouts]
}

// Info returns what the plugin said about itself when it started.
func (c *Client) Info() sdk.Info { return c.info }

// Configure sends the plugin its configuration table and returns the per-key errors.
func (c *Client) Configure(ctx context.Context, cfg map[string]any) ([]sdk.ConfigError, error) {
	var out []sdk.ConfigError
	err := c.deadlines().call(ctx, "Plugin.Configure", control, func(ctx context.Context) (e error) { out, e = c.base.Configure(ctx, cfg); return })
	return out, err
}

// deadlines is what the kind wrappers use to bound each call.
func (c *Client) deadlines() deadlines { return deadlines{plugin: c.info.Name, timeouts: &c.timeouts} }

// Loader returns the plugin's loader, or nil.
func (c *Client) Loader() sdk.Loader { return c.loader }

// Engine returns the plugin's engine, or nil.
func (c *Client) Engine() sdk.Engine { return c.engine }

// Meter returns the plugin's energy meter, or nil.
func (c *Client) Meter() sdk.Meter { return c.meter }

// Repository returns the plugin's repository, or nil.
func (c *Client) Repository() sdk.Repository { return c.repository }

// Pid returns the plugin's process id (0 for an in-process plugin).
func (c *Client) Pid() int { return c.pid }

// Path returns the plugin binary's path ("" for an in-process plugin).
func (c *Client) Path() string { return c.path }

// Exited reports whether the plugin process has exited (a crash, a kill, or Close); always false
// for an in-process plugin.
func (c *Client) Exited() bool { return c.exited != nil && c.exited() }

// Close kills the plugin process (gracefully, then by force after 2 s), or stops the in-process
// server.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		if c.closeFn != nil {
			c.closeFn()
		}
	})
}

// newClient builds a Client over an established connection: it dispenses the common service,
// asks Info, and dispenses every kind Info claims. closeFn, when not nil, is called by Close.
func newClient(ctx context.Context, dispense func(name string) (any, error), closeFn func()) (*Client, error) {
	raw, err := dispense(wire.BaseService)
	if err != nil {
		return nil, fmt.Errorf("dispense %s: %w", wire.BaseService, err)
	}
	c := &Client{base: raw.(*baseClient), closeFn: closeFn}
	def := DefaultCallTimeouts()
	c.timeouts.Store(&def)
	if c.info, err = c.base.Info(ctx); err != nil {
		return nil, fmt.Errorf("ask Info: %w", err)
	}
	d := c.deadlines()
	for _, k := range c.info.Kinds {
		raw, err := dispense(string(k))
		if err != nil {
			return nil, fmt.Errorf("plugin claims kind %q, which this lemctl does not know: %w", k, err)
		}
		switch v := raw.(type) {
		case sdk.Loader:
			c.loader = v
		case sdk.Engine:
			c.engine = timedEngine{d, v}
		case sdk.Meter:
			c.meter = timedMeter{d, v}
		case sdk.Repository:
			c.repository = timedRepository{d, v}
		}
	}
	return c, nil
}

// Probe checks that the plugin really serves every kind its Info claims, with the cheapest
// harmless call of each kind's service. It returns an error naming the first kind whose service
// the plugin does not register, or the first call that did not answer within its deadline (a
// *DeadlineError, see SetCallTimeouts). Other errors from the calls do not fail the probe: a
// plugin may need its configuration, or hardware that is absent, to answer them.
func (c *Client) Probe(ctx context.Context) error {
	for _, k := range c.info.Kinds {
		var err error
		switch k {
		case sdk.KindLoader:
			_, err = c.loader.Detokenize(ctx, "", nil)
		case sdk.KindEngine:
			err = c.engine.Unload(ctx)
		case sdk.KindEnergy:
			_, err = c.meter.Inventory(ctx)
		case sdk.KindRepository:
			_, err = c.repository.List(ctx)
		}
		var re *RPCError
		if errors.As(err, &re) && re.Code == codes.Unimplemented {
			return fmt.Errorf("plugin claims kind %q but does not serve it (%s)", k, re.Message)
		}
		// A plugin that does not answer at all is unusable; one that answers with an error is
		// judged by its user, after configuring it.
		var de *DeadlineError
		if errors.As(err, &de) || errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("probe of kind %q: %w", k, err)
		}
	}
	return nil
}

// OpenOption configures Open.
type OpenOption func(*openConfig)

type openConfig struct {
	logger       hclog.Logger
	startTimeout time.Duration
	checksum     []byte
	env          []string
}

// WithClientLogger sets the logger the plugin's stderr is forwarded to.
func WithClientLogger(l hclog.Logger) OpenOption { return func(c *openConfig) { c.logger = l } }

// WithStartTimeout bounds the time from exec to a completed handshake (default 10 s).
func WithStartTimeout(d time.Duration) OpenOption { return func(c *openConfig) { c.startTimeout = d } }

// WithChecksum refuses to run the binary unless its sha256 equals sum (go-plugin SecureConfig).
func WithChecksum(sum []byte) OpenOption { return func(c *openConfig) { c.checksum = sum } }

// WithEnv adds KEY=VALUE entries to the plugin's environment.
func WithEnv(kv ...string) OpenOption { return func(c *openConfig) { c.env = append(c.env, kv...) } }

// Open starts the plugin binary at path, completes the handshake over gRPC with AutoMTLS, and asks
// its Info. The process gets a parent-death signal and is forked from an OS thread that lives as
// long as the plugin (the signal fires when the forking thread exits), so it dies with the host
// even when the host is SIGKILLed.
//
// The plugin always runs in a process group of its own (its pid is the group id). So a signal
// sent to the host's process group (Ctrl-C in a terminal, `kill -TERM -PGID`, `timeout`, a batch
// scheduler) does not reach it: the host outlives such a signal only long enough to finish its
// work through the plugin when the plugin outlives it too. And the plugin's own children end with
// it: Close (and a failed or cancelled Open) signals the whole group, see killGroup.
func Open(ctx context.Context, path string, opts ...OpenOption) (*Client, error) {
	cfg := openConfig{startTimeout: 10 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = hclog.NewNullLogger()
	}
	// The process is tied to startCtx only until Close: cancelling ctx during the handshake kills
	// it at once (go-plugin's own Kill would wait for the start timeout).
	// go-plugin's server puts its unix socket in $PLUGIN_UNIX_SOCKET_DIR, else in os.TempDir():
	// give it a private (0700) directory of its own, removed when the plugin is closed (and, when
	// the host is killed before that, by the next host's sweep: newSockDir).
	sockDir, err := newSockDir()
	if err != nil {
		return nil, fmt.Errorf("create the plugin's socket directory: %w", err)
	}
	startCtx, cancelStart := context.WithCancel(context.Background())
	stopStart := func() { cancelStart(); os.RemoveAll(sockDir) }
	cmd := exec.CommandContext(startCtx, path)
	cmd.Env = append(os.Environ(), cfg.env...)
	cmd.Env = append(cmd.Env, plugin.EnvUnixSocketDir+"="+sockDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	// Cancelling startCtx kills the whole group, not only the plugin: a child that inherited the
	// plugin's stdout would otherwise keep go-plugin reading it, and a handshake waiting, until the
	// start timeout. exec calls Cancel only after Start, from its own goroutine, so reading
	// cmd.Process here is safe while go-plugin is still inside Start.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cc := &plugin.ClientConfig{
		HandshakeConfig:  wire.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{sdk.APIVersion: clientPlugins()},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true, // cmd.Env already holds the host's environment plus cfg.env
		StartTimeout:     cfg.startTimeout,
		Logger:           cfg.logger,
		GRPCDialOptions:  wire.DialOptions(),
	}
	if cfg.checksum != nil {
		cc.SecureConfig = &plugin.SecureConfig{Checksum: cfg.checksum, Hash: sha256.New()}
	}
	pc := plugin.NewClient(cc)

	type started struct {
		rpc plugin.ClientProtocol
		err error
	}
	ch := make(chan started, 1)
	done := make(chan struct{})
	go func() {
		// Never unlocked: when this goroutine returns the thread exits, after the plugin is dead.
		runtime.LockOSThread()
		rpc, err := pc.Client()
		ch <- started{rpc, err}
		if err == nil {
			<-done
		}
	}()
	var st started
	select {
	case st = <-ch:
	case <-ctx.Done():
		cancelStart() // kills the process group (cmd.Cancel), so the handshake fails now
		st = <-ch
		killGroup(cmd, pc.Kill)
		stopStart()
		if st.err == nil {
			close(done)
		}
		return nil, ctx.Err()
	}
	if st.err != nil {
		killGroup(cmd, pc.Kill)
		stopStart()
		return nil, st.err
	}
	var once sync.Once
	kill := func() { killGroup(cmd, pc.Kill); stopStart(); once.Do(func() { close(done) }) }
	c, err := newClient(ctx, st.rpc.Dispense, kill)
	if err != nil {
		kill()
		return nil, err
	}
	c.path = path
	c.exited = pc.Exited
	if rc := pc.ReattachConfig(); rc != nil {
		c.pid = rc.Pid
	}
	return c, nil
}

// Grace periods of killGroup. go-plugin's own Kill asks the plugin to shut down and kills it by
// force after 2 s; it then waits until the plugin's stdout and stderr reach end of file, which a
// child holding them open would delay forever.
const (
	pluginKillGrace = 3 * time.Second        // for go-plugin's Kill, before the group is signalled
	groupTermGrace  = 500 * time.Millisecond // between SIGTERM and SIGKILL to the group
)

// killGroup ends the plugin and every process left in its process group: it runs stop (go-plugin's
// graceful shutdown, then kill) and, once stop returns or pluginKillGrace passes, sends SIGTERM to
// the group, then SIGKILL after groupTermGrace if any member is still there. Ending the group
// also closes the pipes a child inherited, so stop always returns.
func killGroup(cmd *exec.Cmd, stop func()) {
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(pluginKillGrace):
	}
	if signalGroup(cmd, syscall.SIGTERM) {
		deadline := time.Now().Add(groupTermGrace)
		for groupAlive(cmd) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if groupAlive(cmd) {
			signalGroup(cmd, syscall.SIGKILL)
		}
	}
	<-stopped
}

// signalGroup sends sig to the plugin's process group and says whether the group still existed.
func signalGroup(cmd *exec.Cmd, sig syscall.Signal) bool {
	if cmd.Process == nil || cmd.Process.Pid <= 0 {
		return false
	}
	return syscall.Kill(-cmd.Process.Pid, sig) == nil
}

// groupAlive says whether any process (a zombie included) is left in the plugin's process group.
func groupAlive(cmd *exec.Cmd) bool { return signalGroup(cmd, 0) }
