package model_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lemctl/lemctl/plugins/onnx/internal/testenv"
	"github.com/lemctl/lemctl/plugins/onnx/model"
	"github.com/lemctl/lemctl/sdk"
)

func realLibrary(t *testing.T) string {
	t.Helper()
	lib := filepath.Join(testenv.ThirdParty(), model.LibraryRel)
	if _, err := os.Stat(lib); err != nil {
		testenv.Missing(t, "ONNX Runtime not found at %s (run `make setup`)", lib)
	}
	return lib
}

// fakeOldORT builds testdata/fake_ort.c: a library that claims ONNX Runtime 1.16.3.
func fakeOldORT(t *testing.T) string {
	t.Helper()
	cc, err := exec.LookPath("gcc")
	if err != nil {
		testenv.Missing(t, "gcc is not installed (needed to build a fake old ONNX Runtime)")
	}
	out := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
	if b, err := exec.Command(cc, "-shared", "-fPIC", "-o", out, filepath.Join("testdata", "fake_ort.c")).CombinedOutput(); err != nil {
		t.Fatalf("build fake library: %v\n%s", err, b)
	}
	return out
}

func TestCheckLibrary(t *testing.T) {
	v, err := model.CheckLibrary(realLibrary(t))
	if err != nil || v != model.RequiredORTVersion {
		t.Fatalf("CheckLibrary(real) = %q, %v; want %s", v, err, model.RequiredORTVersion)
	}
	for _, tc := range []struct {
		name  string
		path  string
		is    error
		wants []string
	}{
		{"old version", fakeOldORT(t), model.ErrORTVersion, []string{"1.16.3", "needs ONNX Runtime 1.24.1 (API 24)", "make setup"}},
		{"not ONNX Runtime", "/lib/x86_64-linux-gnu/libc.so.6", model.ErrORTVersion, []string{"not an ONNX Runtime library"}},
		{"not a library", filepath.Join("testdata", "fake_ort.c"), model.ErrORTMissing, []string{"cannot load", "make setup"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := os.Stat(tc.path); err != nil {
				t.Skipf("%s absent", tc.path)
			}
			_, err := model.CheckLibrary(tc.path)
			t.Logf("error: %v", err)
			if !errors.Is(err, tc.is) || !errors.Is(err, sdk.ErrFailedPrecondition) {
				t.Fatalf("err = %v; want %v and ErrFailedPrecondition", err, tc.is)
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestFindLibraryOrder(t *testing.T) {
	tmp := t.TempDir()
	mk := func(p string) string {
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("x"), 0o644)
		return p
	}
	configured := mk(filepath.Join(tmp, "configured", "lib.so"))
	env := mk(filepath.Join(tmp, "env", "lib.so"))
	setup := mk(filepath.Join(tmp, "setup", model.LibraryRel))

	t.Setenv(model.ThirdPartyEnv, filepath.Join(tmp, "setup"))
	t.Setenv(model.LibraryEnv, env)
	for _, tc := range []struct {
		name, configured, env, want string
	}{
		{"config key first", configured, env, configured},
		{"then the environment", "", env, env},
		{"then the set-up folder", "", "", setup},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(model.LibraryEnv, tc.env)
			got, err := model.FindLibrary(tc.configured)
			if err != nil || got != tc.want {
				t.Errorf("FindLibrary = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	t.Run("explicit path missing", func(t *testing.T) {
		_, err := model.FindLibrary(filepath.Join(tmp, "nope.so"))
		if !errors.Is(err, model.ErrORTMissing) || !strings.Contains(err.Error(), "library_path") || !strings.Contains(err.Error(), "make setup") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("nothing anywhere", func(t *testing.T) {
		t.Setenv(model.LibraryEnv, "")
		t.Setenv(model.ThirdPartyEnv, filepath.Join(tmp, "empty"))
		_, err := model.FindLibrary("")
		if !errors.Is(err, model.ErrORTMissing) || !errors.Is(err, sdk.ErrFailedPrecondition) ||
			!strings.Contains(err.Error(), filepath.Join(tmp, "empty", model.LibraryRel)) || !strings.Contains(err.Error(), "make setup") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestInitORT(t *testing.T) {
	lib := realLibrary(t)
	v, err := model.InitORT(lib)
	if err != nil || v != model.RequiredORTVersion {
		t.Fatalf("InitORT = %q, %v", v, err)
	}
	if v, err := model.InitORT(lib); err != nil || v != model.RequiredORTVersion {
		t.Errorf("second InitORT = %q, %v", v, err)
	}
	if p, v := model.ORTLibrary(); p != lib || v != model.RequiredORTVersion {
		t.Errorf("ORTLibrary = %q, %q", p, v)
	}
	// A different library cannot replace the one loaded.
	other := filepath.Join(t.TempDir(), "other.so")
	os.WriteFile(other, []byte("x"), 0o644)
	if _, err := model.InitORT(other); !errors.Is(err, sdk.ErrFailedPrecondition) || !strings.Contains(err.Error(), "already initialised") {
		t.Errorf("InitORT(other) err = %v", err)
	}
}
