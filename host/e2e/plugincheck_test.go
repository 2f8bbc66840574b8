package e2e

import (
	"encoding/json"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lemctl/lemctl/host/cli/measurecmd"
)

// pythonPlugin copies sdk/examples/python (launcher, plugin.py, generated stubs) into a new
// plugin directory, applying edit to plugin.py when set. It skips the test where no python3 has
// the packages the plugin needs (.ci/run installs them).
func pythonPlugin(t *testing.T, edit func(src string) string) (dir, launcher string) {
	t.Helper()
	src := filepath.Join(repoRoot, "sdk", "examples", "python")
	out, err := exec.Command(filepath.Join(src, "lem-plugin-pyexample")).CombinedOutput()
	if strings.Contains(string(out), "no python3 with grpc") {
		t.Skipf("the Python example cannot run here: %s", out)
	}
	if !strings.Contains(string(out), "is a lemctl plugin") {
		t.Fatalf("the Python example run by hand must say it is a plugin; got %v: %s", err, out)
	}
	dir = filepath.Join(t.TempDir(), "plugins")
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			if d.Name() == "__pycache__" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		return copyFile(p, filepath.Join(dir, rel))
	})
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		p := filepath.Join(dir, "plugin.py")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		edited := edit(string(b))
		if edited == string(b) {
			t.Fatal("the edit of plugin.py changed nothing")
		}
		if err := os.WriteFile(p, []byte(edited), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, filepath.Join(dir, "lem-plugin-pyexample")
}

func pluginsCheck(t *testing.T, path string) (code int, stdout, stderr string) {
	t.Helper()
	r := lemctl(t, nil, "plugins", "check", path)
	code = r.wait(t, 3*time.Minute)
	return code, r.stdout.String(), r.stderr.String()
}

// TestPluginsCheckPassesTheExamples runs `lemctl plugins check` on the Go example meter and on
// the Python example: every rule passes, and each is printed.
func TestPluginsCheckPassesTheExamples(t *testing.T) {
	_, py := pythonPlugin(t, nil)
	for _, path := range []string{filepath.Join(pluginDir, "lem-plugin-example-meter"), py} {
		code, out, errOut := pluginsCheck(t, path)
		if code != 0 {
			t.Errorf("%s: exit %d\nstdout:\n%s\nstderr:\n%s", path, code, out, errOut)
			continue
		}
		for _, rule := range []string{"handshake", "info", "schema", "configure", "kinds", "energy", "energy-units"} {
			if !strings.Contains(out, "PASS  "+rule+"\n") {
				t.Errorf("%s: rule %s is not reported passed:\n%s", path, rule, out)
			}
		}
		if strings.Contains(out, "FAIL") {
			t.Errorf("%s: a rule failed:\n%s", path, out)
		}
	}
}

// TestPluginsCheckFailsAMeterInTheWrongUnit breaks the Python example the way a unit bug would
// (its counter in millijoules, sent as microjoules): the check exits 1 naming energy-units.
func TestPluginsCheckFailsAMeterInTheWrongUnit(t *testing.T) {
	_, py := pythonPlugin(t, func(src string) string {
		return strings.Replace(src, "(t - self.t0) // 1_000_000_000)", "(t - self.t0) // 1_000_000_000_000)", 1)
	})
	code, out, errOut := pluginsCheck(t, py)
	if code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "FAIL  energy-units\n") || !strings.Contains(out, "below the 1 W floor of a node domain") ||
		!strings.Contains(errOut, "energy-units") {
		t.Errorf("the energy-units rule is not named:\nstdout:\n%s\nstderr:\n%s", out, errOut)
	}
}

// TestMeasurePythonMeterExactly measures the Python example's known power with `lemctl
// measure`: a plugin in another language goes through discovery, AutoMTLS and the energy
// protocol, and its energy is power × duration within 0.1 %.
func TestMeasurePythonMeterExactly(t *testing.T) {
	dir, _ := pythonPlugin(t, nil)
	r := lemctl(t, nil, "measure", "--plugin-dir", dir, "--meter", "pyexample", "--set", "pyexample.power_w=42.5",
		"--output", "json", "--", "sleep", "2")
	if code := r.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("measure exited %d\n%s", code, r.stderr.String())
	}
	var rep measurecmd.Report
	if err := json.Unmarshal(r.stdout.Bytes(), &rep); err != nil {
		t.Fatalf("measure output is not a JSON report: %v\n%s", err, r.stdout.String())
	}
	if len(rep.Domains) != 1 || rep.Domains[0].ID != "pyexample-node" || rep.Domains[0].EnergyJ == nil {
		t.Fatalf("report %+v", rep)
	}
	want := 42.5 * rep.DurationS
	if got := *rep.Domains[0].EnergyJ; math.Abs(got-want) > 0.001*want {
		t.Errorf("energy %.6f J over %.6f s, want 42.5 W × duration = %.6f J within 0.1 %%", got, rep.DurationS, want)
	}
}
