// Package scripts holds the tests of the repository's shell scripts (scripts/*.sh).
package scripts

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestTestScriptRunsEveryModule: scripts/test.sh (make test) goes on after a module whose vet
// and tests fail, runs the next one, and ends with exit status 1 and the list of what failed.
func TestTestScriptRunsEveryModule(t *testing.T) {
	script, err := filepath.Abs("test.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(path, body string) {
		t.Helper()
		path = filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Module bad fails vet (a Printf verb without its argument) and one test; module good passes.
	write("bad/go.mod", "module example.com/bad\n\ngo 1.21\n")
	write("bad/bad.go", "package bad\n\nimport \"fmt\"\n\nfunc F() string { return fmt.Sprintf(\"%d\") }\n")
	write("bad/bad_test.go", "package bad\n\nimport \"testing\"\n\nfunc TestBad(t *testing.T) { t.Fatal(\"fails on purpose\") }\n")
	write("good/go.mod", "module example.com/good\n\ngo 1.21\n")
	write("good/good_test.go", "package good\n\nimport \"testing\"\n\nfunc TestGood(t *testing.T) {}\n")

	cmd := exec.Command("bash", script, filepath.Join(dir, "bin"), "bad", "good")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TEST_FLAGS=-count=1 -vet=off")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit %v, want status 1\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"--- FAIL: TestBad",      // go test's own lines are shown
		"ok  \texample.com/good", // the module after the failing one still ran
		"make test: 2 failed:\n", // then the list
		"  bad: go vet\n",        //
		"  example.com/bad\n",    // the failed package, from go test's FAIL line
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "example.com/good\n  ") || strings.Count(got, "example.com/good") != 1 {
		t.Errorf("the passing module is listed as failed:\n%s", got)
	}
}
