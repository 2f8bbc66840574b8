package model

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// The first two members of ONNX Runtime's OrtApiBase, stable across every release.
typedef struct {
	const void* (*GetApi)(uint32_t version);
	const char* (*GetVersionString)(void);
} lem_OrtApiBase;
typedef const lem_OrtApiBase* (*lem_GetApiBaseFn)(void);

// lem_ort_probe opens the library at path, copies its version string into version and
// reports whether it provides the C API version api. It returns 0 on success, 1 when the
// library cannot be opened, 2 when it has no OrtGetApiBase; err receives dlerror's message.
static int lem_ort_probe(const char* path, uint32_t api, char* version, size_t vlen, int* has_api, char* err, size_t elen) {
	void* h = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
	if (!h) {
		const char* e = dlerror();
		strncpy(err, e ? e : "dlopen failed", elen - 1);
		return 1;
	}
	lem_GetApiBaseFn fn = (lem_GetApiBaseFn)dlsym(h, "OrtGetApiBase");
	if (!fn) {
		const char* e = dlerror();
		strncpy(err, e ? e : "no OrtGetApiBase", elen - 1);
		dlclose(h);
		return 2;
	}
	const lem_OrtApiBase* base = fn();
	const char* v = base && base->GetVersionString ? base->GetVersionString() : "";
	strncpy(version, v ? v : "", vlen - 1);
	*has_api = base && base->GetApi && base->GetApi(api) != NULL;
	dlclose(h);
	return 0;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/lemctl/lemctl/plugins/onnx/thirdparty"
	"github.com/lemctl/lemctl/sdk"
)

// The ONNX Runtime this plugin is built for: onnxruntime_go v1.27.0 calls the C API version
// ORTAPIVersion, which ONNX Runtime RequiredORTVersion (and later) provides. `make setup`
// installs exactly RequiredORTVersion.
const (
	RequiredORTVersion = "1.24.1"
	ORTAPIVersion      = 24
	// LibraryEnv is the environment variable onnxruntime_go's examples use for the library.
	LibraryEnv = "ONNXRUNTIME_SHARED_LIBRARY_PATH"
	// ThirdPartyEnv names the `make setup` folder (the Makefile exports it to tests).
	ThirdPartyEnv = thirdparty.Env
	// LibraryRel is the library's path inside the set-up folder.
	LibraryRel = "onnxruntime/libonnxruntime.so.1"
)

// ErrORTMissing is wrapped when no ONNX Runtime library is found; ErrORTVersion when the one
// found is not usable. Both also wrap sdk.ErrFailedPrecondition.
var (
	ErrORTMissing = errors.New("ONNX Runtime library not found")
	ErrORTVersion = errors.New("wrong ONNX Runtime version")
)

// setupHint says how to get the library.
const setupHint = "run `make setup` in the lemctl source tree (it fetches ONNX Runtime " + RequiredORTVersion +
	" into third_party/onnxruntime/), or set the onnx plugin's library_path or $" + LibraryEnv +
	" to a libonnxruntime.so of version " + RequiredORTVersion

// ThirdPartyDirs lists the set-up folders to look in (thirdparty.Dirs).
func ThirdPartyDirs() []string { return thirdparty.Dirs() }

// FindLibrary returns the ONNX Runtime library to use: configured (the plugin's library_path)
// when set, then $ONNXRUNTIME_SHARED_LIBRARY_PATH, then the set-up folders. An explicit path
// that does not exist is an error, never skipped.
func FindLibrary(configured string) (string, error) {
	for _, c := range []struct{ path, from string }{
		{configured, "library_path"},
		{os.Getenv(LibraryEnv), "$" + LibraryEnv},
	} {
		if c.path == "" {
			continue
		}
		if _, err := os.Stat(c.path); err != nil {
			return "", fmt.Errorf("%w: %w: %s = %s: %v; %s", sdk.ErrFailedPrecondition, ErrORTMissing, c.from, c.path, err, setupHint)
		}
		return c.path, nil
	}
	var tried []string
	for _, d := range ThirdPartyDirs() {
		p := filepath.Join(d, LibraryRel)
		if _, err := os.Stat(p); err == nil {
			return filepath.Clean(p), nil
		}
		tried = append(tried, filepath.Clean(p))
	}
	return "", fmt.Errorf("%w: %w (looked in library_path, $%s, %s); %s",
		sdk.ErrFailedPrecondition, ErrORTMissing, LibraryEnv, strings.Join(tried, ", "), setupHint)
}

// CheckLibrary opens the library at path without initialising it and returns its version. It
// fails when the file is not an ONNX Runtime library or is too old for API ORTAPIVersion.
func CheckLibrary(path string) (string, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var version, msg [256]C.char
	var hasAPI C.int
	rc := C.lem_ort_probe(cpath, C.uint32_t(ORTAPIVersion), &version[0], C.size_t(len(version)), &hasAPI, &msg[0], C.size_t(len(msg)))
	switch rc {
	case 1:
		return "", fmt.Errorf("%w: %w: cannot load ONNX Runtime library %s: %s; %s", sdk.ErrFailedPrecondition, ErrORTMissing, path, C.GoString(&msg[0]), setupHint)
	case 2:
		return "", fmt.Errorf("%w: %w: %s is not an ONNX Runtime library (no OrtGetApiBase): %s; %s", sdk.ErrFailedPrecondition, ErrORTVersion, path, C.GoString(&msg[0]), setupHint)
	}
	v := C.GoString(&version[0])
	if hasAPI == 0 {
		return v, fmt.Errorf("%w: %w: %s is ONNX Runtime %s, which lacks C API version %d; this plugin needs ONNX Runtime %s (API %d); %s",
			sdk.ErrFailedPrecondition, ErrORTVersion, path, v, ORTAPIVersion, RequiredORTVersion, ORTAPIVersion, setupHint)
	}
	return v, nil
}

var (
	ortMu      sync.Mutex
	ortPath    string
	ortVersion string
)

// InitORT initialises the process-wide ONNX Runtime environment from the library FindLibrary
// picks for configured, once; later calls return the same version (or an error if they ask for
// a different library than the one already loaded). The engine calls it before its first
// session.
func InitORT(configured string) (version string, err error) {
	ortMu.Lock()
	defer ortMu.Unlock()
	path, err := FindLibrary(configured)
	if err != nil {
		return "", err
	}
	if ort.IsInitialized() {
		if ortPath != "" && filepath.Clean(path) != filepath.Clean(ortPath) {
			return "", fmt.Errorf("%w: ONNX Runtime is already initialised from %s; cannot switch to %s in the same process", sdk.ErrFailedPrecondition, ortPath, path)
		}
		return ortVersion, nil
	}
	v, err := CheckLibrary(path)
	if err != nil {
		return "", err
	}
	ort.SetSharedLibraryPath(path)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return "", fmt.Errorf("%w: initialise ONNX Runtime %s from %s: %v", sdk.ErrFailedPrecondition, v, path, err)
	}
	ortPath, ortVersion = path, v
	return v, nil
}

// ORTLibrary returns the path and version of the initialised ONNX Runtime ("" when none).
func ORTLibrary() (path, version string) {
	ortMu.Lock()
	defer ortMu.Unlock()
	return ortPath, ortVersion
}
