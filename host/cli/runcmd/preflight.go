package runcmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/echo"
	"github.com/lemctl/lemctl/host/launch"
	"github.com/lemctl/lemctl/sdk"
)

// What `lemctl run` checks before it spawns a worker or writes anything (docs/reliability.md,
// "Checked before spawning"). Each failure is a usage or configuration error (exit 2) and leaves
// no runs/<id>:
//
//   - the config, every plugin table, a dataset file that exists and is a file (host/config);
//   - the model reference, resolved by the loader plugin in the parent (checkContext; a local
//     path that does not exist is named as such by modelRefError), and max_new_tokens against
//     its context;
//   - the dataset, opened and sampled in the parent (openDataset);
//   - the launch.devices entries, resolved through the energy plugins' inventories (deviceSlots);
//   - here: the results directory is writable, and its file system has room for the run's
//     estimated output × SpaceMargin.

// SpaceMargin multiplies the estimated bytes of a run (EstimateRunBytes) before they are compared
// with the free space of the results directory's file system. The estimate counts one pass of
// the sample per repeat; a run with workload.min_window_s repeats its batches until the window is
// long enough, and writes more: the margin covers a window twice the estimate.
const SpaceMargin = 2

// Allowances of EstimateRunBytes, in bytes.
const (
	rawFixedBytes     = 64 << 10 // a raw result without its request records: config, environment, energy
	requestFixedBytes = 320      // one request record without its token times (id, counts, start)
	tokenTimeBytes    = 21       // one token time: up to 19 digits, a comma, a space
	workerLogBytes    = 1 << 20  // one worker's log
	manifestBytes     = 16 << 10
)

// EstimateRunBytes estimates what a run of specs writes under the results directory: each
// worker's spec (its exact size), log allowance and raw result (a fixed part plus, per repeat and
// per prompt of its shard, a request record with one time per new token), the manifest, and the
// aggregate (the raw results' fixed parts).
func EstimateRunBytes(specs []*launch.Spec) (int64, error) {
	total := int64(manifestBytes)
	for _, s := range specs {
		b, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			return 0, err
		}
		repeats := int64(max(1, s.Workload.Repeats))
		perRequest := int64(requestFixedBytes + 2*len(s.ExperimentID) + int(tokenTimeBytes)*max(1, s.Workload.Decoding.MaxNewTokens))
		total += int64(len(b)) + workerLogBytes + rawFixedBytes + repeats*int64(len(s.Prompts))*perRequest
		total += rawFixedBytes // its part of the aggregate
	}
	return total, nil
}

// freeBytes returns the bytes an unprivileged user may still write on the file system of dir.
func freeBytes(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// nearestExisting returns dir or its nearest ancestor that exists, and what it is.
func nearestExisting(dir string) (string, fs.FileInfo, error) {
	d := filepath.Clean(dir)
	for {
		info, err := os.Stat(d)
		if err == nil {
			return d, info, nil
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ENOTDIR) {
			return d, nil, err
		}
		parent := filepath.Dir(d)
		if parent == d {
			return d, nil, err
		}
		d = parent
	}
}

// preflight checks, without writing anything, that the run's directories under resultsDir can
// be created and written (runs/, raw/, aggregated/ or their nearest existing ancestor is a
// writable directory) and that its file system has EstimateRunBytes × SpaceMargin free (free
// gives a directory's free bytes). resultsDir "" means the current directory, where the run
// directory then goes.
func preflight(resultsDir string, specs []*launch.Spec, free func(dir string) (uint64, error)) error {
	root := resultsDir
	if root == "" {
		root = "."
	}
	var fsDir string
	for _, sub := range []string{"runs", "raw", "aggregated"} {
		want := filepath.Join(root, sub)
		d, info, err := nearestExisting(want)
		switch {
		case err != nil:
			return cliutil.Usagef("results directory %s: cannot create %s: %v", root, want, err)
		case !info.IsDir():
			return cliutil.Usagef("results directory %s: cannot create %s: %s is not a directory (set --results-dir or repository.path to a directory)", root, want, d)
		}
		if err := unix.Access(d, unix.W_OK|unix.X_OK); err != nil {
			return cliutil.Usagef("results directory %s: cannot create %s: %s is not writable (%v; set --results-dir or repository.path to a writable directory)", root, want, d, err)
		}
		fsDir = d
	}
	need, err := EstimateRunBytes(specs)
	if err != nil {
		return err
	}
	need *= SpaceMargin
	have, err := free(fsDir)
	if err != nil {
		return cliutil.Failed(fmt.Errorf("results directory %s: free space of %s: %w", root, fsDir, err))
	}
	if have < uint64(need) {
		return cliutil.Usagef("results directory %s: %s has %s free, the run needs about %s (%d workers: %s estimated × %d margin, docs/reliability.md); free space or set --results-dir elsewhere",
			root, fsDir, byteCount(int64(have)), byteCount(need), len(specs), byteCount(need/SpaceMargin), SpaceMargin)
	}
	return nil
}

// modelRefError is the error of a model reference the loader could not resolve: a usage error
// when the loader says the reference is bad or absent, or when it is a local path that does not
// exist (named as such, whatever the loader said); else a failure.
func modelRefError(ref string, err error) error {
	local := filepath.IsAbs(ref) || strings.HasPrefix(ref, "./") || strings.HasPrefix(ref, "../") || strings.HasPrefix(ref, "~/")
	if local {
		if _, serr := os.Stat(ref); errors.Is(serr, fs.ErrNotExist) {
			return cliutil.Usagef("model.ref %s: no such file or directory (a local path; the loader said: %v)", echo.Quote(ref), err)
		}
	}
	err = fmt.Errorf("model.ref %s: %w", echo.Quote(ref), err)
	if errors.Is(err, sdk.ErrInvalidArgument) || errors.Is(err, sdk.ErrNotFound) {
		return cliutil.Usage(err)
	}
	return cliutil.Failed(err)
}

// byteCount prints n in binary units: 1.5 GiB.
func byteCount(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB (%d bytes)", float64(n)/float64(div), "KMGTPE"[exp], n)
}
