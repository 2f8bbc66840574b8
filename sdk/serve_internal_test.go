package sdk

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/lemctl/lemctl/sdk/internal/wire"
)

// envWatchRole makes the test binary play a part in TestParentWatchExitsWithoutThePoll.
const envWatchRole = "LEM_SDK_TEST_WATCH_ROLE"

func TestMain(m *testing.M) {
	switch os.Getenv(envWatchRole) {
	case "parent":
		// Start the watcher, say its pid, and exit at once.
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envWatchRole+"=watcher")
		cmd.Stderr = os.Stderr
		watching, err := cmd.StdoutPipe()
		if err == nil {
			err = cmd.Start()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		fmt.Println(cmd.Process.Pid)
		// Exit only once the watcher says it is watching (a fixed sleep lost that race on a
		// busy machine, and the watcher then watched its new parent for an hour).
		if _, err := bufio.NewReader(watching).ReadString('\n'); err != nil {
			fmt.Fprintln(os.Stderr, "the watcher did not start watching:", err)
			os.Exit(3)
		}
		os.Exit(0)
	case "serve-by-hand":
		Serve(&Plugin{Name: "store", Repository: struct{ Repository }{}})
		os.Exit(4) // Serve returned
	case "watcher":
		// Ignore the parent-death signal, so that only the pidfd can end this process in time:
		// the getppid poll is set to an hour.
		signal.Ignore(syscall.SIGTERM)
		if err := watchParent(time.Hour, hclog.NewNullLogger()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(5)
		}
		fmt.Println("watching")
		time.Sleep(time.Minute)
		os.Exit(4) // the watch did not fire
	}
	os.Exit(m.Run())
}

// TestParentWatchExitsWithoutThePoll: a plugin process whose parent dies exits through the pidfd
// watch (exit status 1) even when the parent-death signal is ignored and the poll would not come
// for an hour.
func TestParentWatchExitsWithoutThePoll(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envWatchRole+"=parent")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("read the watcher's pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("watcher pid %q: %v", line, err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("parent: %v", err)
	}
	// The watcher is not our child: watch /proc for it to be gone (or a zombie, where the
	// reaper it was given does not reap).
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return // gone
		}
		if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); len(f) > 0 && f[0] == "Z" {
			return
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("watcher %d still running 20 s after its parent exited", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServeExitsWhereRunReturnsAnError: Serve, run by hand, says why on stderr and exits 1.
func TestServeExitsWhereRunReturnsAnError(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envWatchRole+"=serve-by-hand", wire.Handshake.MagicCookieKey+"=")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("Serve by hand: %v, want exit status 1; stderr: %s", err, stderr.String())
	}
	if want := "lemctl plugin: " + os.Args[0] + " is a lemctl plugin (repository): lemctl starts it; it is not run by hand."; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr = %q, want it to contain %q", stderr.String(), want)
	}
}
