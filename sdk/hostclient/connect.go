package hostclient

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/internal/wire"
	energyv1 "github.com/lemctl/lemctl/sdk/proto/lem/energy/v1"
	enginev1 "github.com/lemctl/lemctl/sdk/proto/lem/engine/v1"
	loaderv1 "github.com/lemctl/lemctl/sdk/proto/lem/loader/v1"
	pluginv1 "github.com/lemctl/lemctl/sdk/proto/lem/plugin/v1"
	repositoryv1 "github.com/lemctl/lemctl/sdk/proto/lem/repository/v1"
)

// connectors makes the host's client of each service, by go-plugin name.
func connectors() map[string]func(grpc.ClientConnInterface) any {
	return map[string]func(grpc.ClientConnInterface) any{
		wire.BaseService: func(c grpc.ClientConnInterface) any { return &baseClient{c: pluginv1.NewPluginClient(c)} },
		string(sdk.KindLoader): func(c grpc.ClientConnInterface) any {
			return &loaderClient{c: loaderv1.NewLoaderClient(c)}
		},
		string(sdk.KindEngine): func(c grpc.ClientConnInterface) any {
			return &engineClient{c: enginev1.NewEngineClient(c)}
		},
		string(sdk.KindEnergy): func(c grpc.ClientConnInterface) any {
			return &energyClient{c: energyv1.NewEnergyClient(c)}
		},
		string(sdk.KindRepository): func(c grpc.ClientConnInterface) any {
			return &repositoryClient{c: repositoryv1.NewRepositoryClient(c)}
		},
	}
}

// clientPlugins is the go-plugin set Open dispenses from.
func clientPlugins() plugin.PluginSet {
	set := plugin.PluginSet{}
	for name, f := range connectors() {
		set[name] = &wire.Service{Connect: f}
	}
	return set
}

// Connect returns a Client over conn, a gRPC connection to a server of the plugin protocol
// (lem.plugin.v1 and one service per kind its Info claims), such as a test's hand-made server.
// It asks Info; closeFn, when not nil, is called by Close.
func Connect(ctx context.Context, conn grpc.ClientConnInterface, closeFn func()) (*Client, error) {
	conns := connectors()
	return newClient(ctx, func(name string) (any, error) {
		f, ok := conns[name]
		if !ok {
			return nil, fmt.Errorf("unknown service %q", name)
		}
		return f(conn), nil
	}, closeFn)
}

// InProcess serves p inside this process (sdk.Run with sdk.WithListener, on a Unix socket in a
// temporary directory) and returns the host's Client over it: the same adapters and protocol as
// a plugin process, without building a binary. Close stops the server and removes the socket.
// Like every in-process connection it keeps gRPC's default 4 MiB message limit, so a payload
// the sdk failed to chunk fails here. Pid and Path are zero.
func InProcess(ctx context.Context, p *sdk.Plugin) (*Client, error) {
	dir, err := os.MkdirTemp("", "lem-inprocess-")
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "plugin.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	var serveErr error
	served := make(chan struct{})
	go func() {
		serveErr = sdk.Run(p, sdk.WithListener(l))
		close(served)
	}()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		l.Close()
		<-served
		os.RemoveAll(dir)
		return nil, err
	}
	stop := func() {
		conn.Close()
		l.Close()
		<-served
		os.RemoveAll(dir)
	}
	type result struct {
		c   *Client
		err error
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	got := make(chan result, 1)
	go func() {
		c, err := Connect(cctx, conn, stop)
		got <- result{c, err}
	}()
	select {
	case r := <-got:
		if r.err != nil {
			stop()
			return nil, r.err
		}
		return r.c, nil
	case <-served: // Run gave up before serving: p breaks a rule of sdk.Plugin
		cancel()
		<-got
		stop()
		if serveErr == nil {
			return nil, fmt.Errorf("plugin %q stopped serving before it answered Info", p.Name)
		}
		return nil, serveErr
	}
}
