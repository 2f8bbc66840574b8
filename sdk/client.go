package sdk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// Client is the host's handle on one running plugin process. Its kind accessors return nil for
// kinds the plugin does not serve. Close kills the process; it is safe to call more than once.
type Client struct {
	info       Info
	base       *baseClient
	loader     Loader
	engine     Engine
	meter      Meter
	repository Repository
	pid        int
	path       string
	closeOnce  sync.Once
	closeFn    func()
}

// Info returns what the plugin said about itself when it started.
func (c *Client) Info() Info { return c.info }

// Configure sends the plugin its configuration table and returns the per-key errors.
func (c *Client) Configure(ctx context.Context, cfg map[string]any) ([]ConfigError, error) {
	return c.base.Configure(ctx, cfg)
}

// Loader returns the plugin's loader, or nil.
func (c *Client) Loader() Loader { return c.loader }

// Engine returns the plugin's engine, or nil.
func (c *Client) Engine() Engine { return c.engine }

// Meter returns the plugin's energy meter, or nil.
func (c *Client) Meter() Meter { return c.meter }

// Repository returns the plugin's repository, or nil.
func (c *Client) Repository() Repository { return c.repository }

// Pid returns the plugin's process id (0 for an in-process plugin).
func (c *Client) Pid() int { return c.pid }

// Path returns the plugin binary's path ("" for an in-process plugin).
func (c *Client) Path() string { return c.path }

// Close kills the plugin process (gracefully, then by force after 2 s).
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		if c.closeFn != nil {
			c.closeFn()
		}
	})
}

// NewClient builds a Client over an established go-plugin connection: it dispenses every kind
// the plugin's Info claims. closeFn is called by Close.
func NewClient(ctx context.Context, rpc plugin.ClientProtocol, closeFn func()) (*Client, error) {
	raw, err := rpc.Dispense(dispenseBase)
	if err != nil {
		return nil, fmt.Errorf("dispense %s: %w", dispenseBase, err)
	}
	c := &Client{base: raw.(*baseClient), closeFn: closeFn}
	if c.info, err = c.base.Info(ctx); err != nil {
		return nil, fmt.Errorf("ask Info: %w", err)
	}
	for _, k := range c.info.Kinds {
		raw, err := rpc.Dispense(string(k))
		if err != nil {
			return nil, fmt.Errorf("plugin claims kind %q, which this lemctl does not know: %w", k, err)
		}
		switch v := raw.(type) {
		case Loader:
			c.loader = v
		case Engine:
			c.engine = v
		case Meter:
			c.meter = v
		case Repository:
			c.repository = v
		}
	}
	return c, nil
}

// Probe checks that the plugin really serves every kind its Info claims, with the cheapest
// harmless call of each kind's service. It returns an error naming the first kind whose service
// the plugin does not register.
func (c *Client) Probe(ctx context.Context) error {
	for _, k := range c.info.Kinds {
		var err error
		switch k {
		case KindLoader:
			_, err = c.loader.Detokenize(ctx, "", nil)
		case KindEngine:
			err = c.engine.Unload(ctx)
		case KindEnergy:
			_, err = c.meter.Inventory(ctx)
		case KindRepository:
			_, err = c.repository.List(ctx)
		}
		var re *RPCError
		if errors.As(err, &re) && re.Code == codes.Unimplemented {
			return fmt.Errorf("plugin claims kind %q but does not serve it (%s)", k, re.Message)
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
	ownGroup     bool
}

// WithClientLogger sets the logger the plugin's stderr is forwarded to.
func WithClientLogger(l hclog.Logger) OpenOption { return func(c *openConfig) { c.logger = l } }

// WithStartTimeout bounds the time from exec to a completed handshake (default 10 s).
func WithStartTimeout(d time.Duration) OpenOption { return func(c *openConfig) { c.startTimeout = d } }

// WithChecksum refuses to run the binary unless its sha256 equals sum (go-plugin SecureConfig).
func WithChecksum(sum []byte) OpenOption { return func(c *openConfig) { c.checksum = sum } }

// WithOwnProcessGroup starts the plugin in a process group of its own, so that a signal sent to
// the host's process group (Ctrl-C in a terminal, `kill -TERM -PGID`, `timeout`, a batch
// scheduler) does not reach it: the host outlives such a signal only long enough to finish its
// work through the plugin when the plugin outlives it too. The parent-death signal still ends the
// plugin with the host.
func WithOwnProcessGroup() OpenOption { return func(c *openConfig) { c.ownGroup = true } }

// WithEnv adds KEY=VALUE entries to the plugin's environment.
func WithEnv(kv ...string) OpenOption { return func(c *openConfig) { c.env = append(c.env, kv...) } }

// Open starts the plugin binary at path, completes the handshake over gRPC with AutoMTLS, and asks
// its Info. The process gets a parent-death signal and is forked from an OS thread that lives as
// long as the plugin (the signal fires when the forking thread exits), so it dies with the host
// even when the host is SIGKILLed.
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
	startCtx, cancelStart := context.WithCancel(context.Background())
	cmd := exec.CommandContext(startCtx, path)
	cmd.Env = append(os.Environ(), cfg.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: cfg.ownGroup}
	cc := &plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{APIVersion: ClientPlugins()},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true, // cmd.Env already holds the host's environment plus cfg.env
		StartTimeout:     cfg.startTimeout,
		Logger:           cfg.logger,
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes))},
	}
	if cfg.checksum != nil {
		cc.SecureConfig = &plugin.SecureConfig{Checksum: cfg.checksum, Hash: sha256New()}
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
		cancelStart() // kills the process, so the handshake fails now
		st = <-ch
		pc.Kill()
		cancelStart()
		if st.err == nil {
			close(done)
		}
		return nil, ctx.Err()
	}
	if st.err != nil {
		pc.Kill()
		cancelStart()
		return nil, st.err
	}
	var once sync.Once
	kill := func() { pc.Kill(); cancelStart(); once.Do(func() { close(done) }) }
	c, err := NewClient(ctx, st.rpc, kill)
	if err != nil {
		kill()
		return nil, err
	}
	c.path = path
	if rc := pc.ReattachConfig(); rc != nil {
		c.pid = rc.Pid
	}
	return c, nil
}
