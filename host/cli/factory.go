package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/config"
	"github.com/lemctl/lemctl/host/discovery"
	"github.com/lemctl/lemctl/sdk"
	"github.com/lemctl/lemctl/sdk/hostclient"
)

// DefaultRepository is the repository plugin that --results-dir addresses.
const DefaultRepository = "fsstore"

// newFactory builds the process's Factory on the given streams, with its lazy catalog and
// repository, and the function that closes whatever they made (called once, at exit).
func newFactory(in io.Reader, out, errw io.Writer) (*cliutil.Factory, func()) {
	f := &cliutil.Factory{In: in, Out: out, Err: errw, Logger: hclog.NewNullLogger()}
	if exe, err := os.Executable(); err == nil {
		f.Executable = exe
	}
	l := &lazy{f: f}
	f.Catalog = l.catalog
	f.Repository = l.repository
	f.Configurer = l.configurer
	return f, l.close
}

// lazy holds what the Factory made: discovery runs at most once, the repository opens at most
// once, and close releases both.
type lazy struct {
	f *cliutil.Factory

	mu      sync.Mutex
	catDone bool
	catLock string
	cat     *discovery.Catalog
	catErr  error

	repoDone   bool
	repo       sdk.Repository
	repoClient *hostclient.Client
	repoErr    error
}

func (l *lazy) catalog(ctx context.Context, lockFile string) (*discovery.Catalog, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.catalogLocked(ctx, lockFile)
}

func (l *lazy) catalogLocked(ctx context.Context, lockFile string) (*discovery.Catalog, error) {
	if l.catDone {
		if lockFile != l.catLock {
			return nil, fmt.Errorf("plugin discovery already ran with lock %q; cannot use lock %q in the same command", l.catLock, lockFile)
		}
		return l.cat, l.catErr
	}
	opts := discovery.OptionsFromEnv(l.f.PluginDirs, l.f.Executable, l.f.Logger)
	opts.LockFile = lockFile
	l.cat, l.catErr = discovery.Discover(ctx, opts)
	l.catDone, l.catLock = true, lockFile
	return l.cat, l.catErr
}

// repository starts the default repository plugin on --results-dir, which must be a directory:
// a missing one is a usage error naming it, never an empty repository.
func (l *lazy) repository(ctx context.Context) (sdk.Repository, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.repoDone {
		l.repo, l.repoClient, l.repoErr = l.openRepository(ctx)
		l.repoDone = true
	}
	return l.repo, l.repoErr
}

func (l *lazy) openRepository(ctx context.Context) (sdk.Repository, *hostclient.Client, error) {
	dir := l.f.ResultsDir
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		why := "not a directory"
		if err != nil {
			why = "no such directory"
		}
		return nil, nil, cliutil.Usagef("--results-dir %s: %s (results are stored there by lemctl run; pass the directory you ran with)", dir, why)
	}
	cat, err := l.catalogLocked(ctx, "")
	if err == nil {
		abs, aerr := filepath.Abs(dir)
		if aerr != nil {
			abs = dir
		}
		var c *hostclient.Client
		if c, err = cat.OpenConfigured(ctx, DefaultRepository, sdk.KindRepository, map[string]any{"path": abs}); err == nil {
			return c.Repository(), c, nil
		}
	}
	var ee *cliutil.ExitError
	if errors.As(err, &ee) {
		return nil, nil, err
	}
	return nil, nil, cliutil.Failed(fmt.Errorf("open results repository %s: %w", dir, err))
}

// configurer is a session of the catalog, as a run uses: each plugin starts once even when it
// serves several kinds.
func (l *lazy) configurer(ctx context.Context) (config.PluginConfigurer, func(), error) {
	cat, err := l.catalog(ctx, "")
	if err != nil {
		return nil, nil, err
	}
	sess := cat.NewSession()
	return sess, sess.Close, nil
}

func (l *lazy) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.repoClient != nil {
		l.repoClient.Close()
	}
	if l.cat != nil {
		l.cat.Close()
	}
}
