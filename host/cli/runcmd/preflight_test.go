package runcmd

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/host/aggregate"
	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/launch"
	"github.com/lemctl/lemctl/sdk"
)

// specs returns n worker specs of prompts prompts each, generating newTokens tokens.
func specs(n, prompts, newTokens int) []*launch.Spec {
	var out []*launch.Spec
	for r := range n {
		s := &launch.Spec{ExperimentID: "20261203T000000Z-x-abcdef", Rank: r, WorldSize: n}
		s.Workload.Decoding.MaxNewTokens = newTokens
		for i := range prompts {
			s.Prompts = append(s.Prompts, sdk.Prompt{ID: fmt.Sprintf("p%d", i), Text: "a prompt of some words"})
		}
		out = append(out, s)
	}
	return out
}

func plenty(string) (uint64, error) { return 1 << 50, nil }

// TestEstimateRunBytes: the estimate grows with the workers, the prompts and the new tokens, and
// holds the specs' exact size.
func TestEstimateRunBytes(t *testing.T) {
	est := func(n, prompts, tokens int) int64 {
		b, err := EstimateRunBytes(specs(n, prompts, tokens))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	one := est(1, 10, 32)
	if two := est(2, 10, 32); two-manifestBytes != 2*(one-manifestBytes) {
		t.Errorf("2 workers: %d bytes, want twice 1 worker's %d (less the manifest)", two, one)
	}
	if est(1, 1000, 32) <= one || est(1, 10, 512) <= one {
		t.Errorf("more prompts or tokens did not raise the estimate")
	}
	if one < workerLogBytes+2*rawFixedBytes {
		t.Errorf("estimate %d below one worker's fixed allowances", one)
	}
}

// TestPreflightRefusesTooLittleSpace: below estimate × margin, exit 2 naming the directory, the
// free and the needed bytes; nothing is created.
func TestPreflightRefusesTooLittleSpace(t *testing.T) {
	res := filepath.Join(t.TempDir(), "results")
	sp := specs(2, 16, 8)
	need, _ := EstimateRunBytes(sp)
	var asked string
	err := preflight(res, sp, func(dir string) (uint64, error) { asked = dir; return uint64(need*SpaceMargin) - 1, nil })
	if cliutil.CodeOf(err) != cliutil.ExitUsage {
		t.Fatalf("preflight = %v (exit %d), want exit 2", err, cliutil.CodeOf(err))
	}
	msg := err.Error()
	for _, want := range []string{"results directory " + res, filepath.Dir(res) + " has ", fmt.Sprintf("(%d bytes) free", need*SpaceMargin-1), fmt.Sprintf("needs about %s", byteCount(need*SpaceMargin)), "2 workers"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if asked != filepath.Dir(res) {
		t.Errorf("free space asked of %q, want the nearest existing directory %q", asked, filepath.Dir(res))
	}
	if _, err := os.Stat(res); err == nil {
		t.Errorf("preflight created %s", res)
	}
	if err := preflight(res, sp, func(string) (uint64, error) { return uint64(need * SpaceMargin), nil }); err != nil {
		t.Errorf("exactly enough space refused: %v", err)
	}
}

// TestPreflightRefusesAResultsDirThatIsAFile: a results directory below a regular file cannot
// be created: exit 2 naming it.
func TestPreflightRefusesAResultsDirThatIsAFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := preflight(filepath.Join(file, "results"), specs(1, 1, 1), plenty)
	if cliutil.CodeOf(err) != cliutil.ExitUsage || !strings.Contains(err.Error(), file+" is not a directory") {
		t.Errorf("preflight = %v, want exit 2 saying %s is not a directory", err, file)
	}
}

// TestPreflightRefusesAnUnwritableResultsDir: a directory the user cannot write (non-root: mode
// 0555) is exit 2 naming it.
func TestPreflightRefusesAnUnwritableResultsDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes a mode 0555 directory; TestPreflightOnTmpfs covers a read-only file system")
	}
	dir := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	err := preflight(dir, specs(1, 1, 1), plenty)
	if cliutil.CodeOf(err) != cliutil.ExitUsage || !strings.Contains(err.Error(), dir+" is not writable") {
		t.Errorf("preflight = %v, want exit 2 saying %s is not writable", err, dir)
	}
}

// mountTmpfs mounts a tmpfs of size (mount -o size=…) with extra options, or skips when not root
// or when mounting is not allowed here.
func mountTmpfs(t *testing.T, size, extra string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	opts := "size=" + size
	if extra != "" {
		opts += "," + extra
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	return dir
}

// TestPreflightOnTmpfs (root): a real small file system is refused by its statfs free space, and
// a read-only one as not writable.
func TestPreflightOnTmpfs(t *testing.T) {
	small := mountTmpfs(t, "256k", "")
	err := preflight(filepath.Join(small, "results"), specs(2, 16, 8), freeBytes)
	if cliutil.CodeOf(err) != cliutil.ExitUsage || !strings.Contains(err.Error(), small+" has ") || !strings.Contains(err.Error(), "free, the run needs about") {
		t.Errorf("preflight on a 256 KiB tmpfs = %v, want exit 2 naming %s, free and needed bytes", err, small)
	}
	if ents, _ := os.ReadDir(small); len(ents) != 0 {
		t.Errorf("preflight wrote into %s: %v", small, ents)
	}
	ro := mountTmpfs(t, "1m", "ro")
	err = preflight(ro, specs(1, 1, 1), plenty)
	if cliutil.CodeOf(err) != cliutil.ExitUsage || !strings.Contains(err.Error(), ro+" is not writable") {
		t.Errorf("preflight on a read-only tmpfs = %v, want exit 2 saying it is not writable", err)
	}
}

// TestModelRefError: a local path that does not exist is a usage error naming model.ref and the
// path whatever the loader said; a loader's not-found or invalid-argument is a usage error; any
// other failure is exit 1.
func TestModelRefError(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-model")
	cases := []struct {
		ref  string
		err  error
		code int
		want string
	}{
		{missing, errors.New("loader crashed"), cliutil.ExitUsage, `model.ref "` + missing + `": no such file or directory`},
		{"./no/such/model", errors.New("boom"), cliutil.ExitUsage, `model.ref "./no/such/model": no such file or directory`},
		{"hub:gpt2", fmt.Errorf("%w: no such model", sdk.ErrNotFound), cliutil.ExitUsage, `model.ref "hub:gpt2": not found: no such model`},
		{"hub:gpt2", fmt.Errorf("%w: bad name", sdk.ErrInvalidArgument), cliutil.ExitUsage, `model.ref "hub:gpt2"`},
		{"hub:gpt2", errors.New("network down"), cliutil.ExitFailed, `model.ref "hub:gpt2": network down`},
		{t.TempDir(), errors.New("not a model"), cliutil.ExitFailed, "not a model"}, // exists: the loader's word
	}
	for _, tc := range cases {
		err := modelRefError(tc.ref, tc.err)
		if cliutil.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("modelRefError(%q, %v) = %v (exit %d), want exit %d with %q", tc.ref, tc.err, err, cliutil.CodeOf(err), tc.code, tc.want)
		}
	}
	long := "/" + strings.Repeat("m", 1<<20)
	if msg := modelRefError(long, errors.New("x")).Error(); len(msg) > 1000 || !strings.Contains(msg, fmt.Sprintf("(%d bytes)", len(long))) {
		t.Errorf("a 1 MiB model.ref is echoed in %d bytes", len(msg))
	}
}

// TestPartialHint: the --no-strict hint only when a rank left a usable raw result.
func TestPartialHint(t *testing.T) {
	if h := partialHint(&aggregate.CheckError{Usable: 1}, "e1"); !strings.Contains(h, "lemctl aggregate e1 --no-strict") {
		t.Errorf("hint with a usable rank = %q", h)
	}
	for _, err := range []error{&aggregate.CheckError{Usable: 0}, fmt.Errorf("aggregate e1: %w: no raw results", sdk.ErrNotFound)} {
		if h := partialHint(err, "e1"); h != "" {
			t.Errorf("hint for %v = %q, want none", err, h)
		}
	}
}
