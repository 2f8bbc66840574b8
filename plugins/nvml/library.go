package nvml

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	nv "github.com/NVIDIA/go-nvml/pkg/nvml"
)

// DefaultLibraryName is the file name the dynamic loader searches for when no path is set.
const DefaultLibraryName = "libnvidia-ml.so.1"

// DriverFolders are searched, in order, after the loader's default search failed: where
// container runtimes and distributions put the driver's user-space libraries.
var DriverFolders = []string{
	"/usr/local/nvidia/lib64",
	"/usr/local/nvidia/lib",
	"/usr/lib/x86_64-linux-gnu",
	"/usr/lib64",
	"/usr/lib/aarch64-linux-gnu",
	"/usr/lib/wsl/lib",
}

// LibraryOpener returns an NVML handle for the library at path ("" means the loader's default,
// libnvidia-ml.so.1 on the loader's search path). It must not call Init: the caller does, and
// makes no other call on the handle unless Init succeeded. Tests return go-nvml mock servers.
type LibraryOpener func(path string) nv.Interface

// OpenLibrary is the real LibraryOpener: go-nvml's dlopen-based library.
func OpenLibrary(path string) nv.Interface {
	if path == "" {
		return nv.New()
	}
	return nv.New(nv.WithLibraryPath(path))
}

// library is NVML after a successful Init. lib is the only handle the meter ever calls.
type library struct {
	lib  nv.Interface
	path string // the library that was loaded; "" for the loader's default
}

// initError says why NVML could not be initialised; it is the reason of every domain.
type initError struct {
	tried  []string
	reason string
}

func (e *initError) Error() string { return e.reason }

// candidates lists the libraries to try: the configured one alone, or the loader's default
// followed by the driver folders' copies that exist.
func candidates(configured string, stat func(string) (fs.FileInfo, error)) []string {
	if configured != "" {
		return []string{configured}
	}
	out := []string{""}
	for _, dir := range DriverFolders {
		p := filepath.Join(dir, DefaultLibraryName)
		if _, err := stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func displayPath(p string) string {
	if p == "" {
		return DefaultLibraryName + " (the loader's default search)"
	}
	return p
}

// initLibrary loads and initialises NVML. It tries the candidates in order while the library
// cannot be found; once a library was loaded (Init answered anything but LIBRARY_NOT_FOUND) it
// stops, because the process's NVML symbols are then bound to that library. On failure it
// returns an *initError and makes no further NVML call.
func initLibrary(open LibraryOpener, configured string, stat func(string) (fs.FileInfo, error)) (*library, error) {
	if stat == nil {
		stat = os.Stat
	}
	cands := candidates(configured, stat)
	var tried []string
	for _, p := range cands {
		lib := open(p)
		ret := lib.Init()
		switch ret {
		case nv.SUCCESS:
			return &library{lib: lib, path: p}, nil
		case nv.ERROR_LIBRARY_NOT_FOUND:
			what := "not found"
			if p != "" {
				if _, err := stat(p); err == nil {
					what = "exists but could not be loaded (wrong architecture or missing dependencies?)"
				} else if !errors.Is(err, fs.ErrNotExist) {
					what = "unreadable: " + err.Error()
				}
			}
			tried = append(tried, displayPath(p)+": "+what)
			continue
		default:
			// The library loaded but nvmlInit failed: no other NVML call is made.
			return nil, &initError{tried: append(tried, displayPath(p)),
				reason: fmt.Sprintf("NVML library %s loaded, but nvmlInit failed: %s%s", displayPath(p), retName(ret), initHint(ret))}
		}
	}
	reason := "NVML library not found"
	if configured != "" {
		reason = fmt.Sprintf("NVML library %s", tried[0])
		reason += " (library_path)"
	} else {
		reason += " (tried " + strings.Join(tried, "; ") + "); is the NVIDIA driver installed? Set library_path if libnvidia-ml.so.1 is elsewhere"
	}
	return nil, &initError{tried: tried, reason: reason}
}

func initHint(ret nv.Return) string {
	switch ret {
	case nv.ERROR_DRIVER_NOT_LOADED:
		return " (the NVIDIA kernel driver is not loaded)"
	case nv.ERROR_NO_PERMISSION:
		return " (no permission to open the GPU device files)"
	case nv.ERROR_LIB_RM_VERSION_MISMATCH:
		return " (the NVML library and the kernel driver have different versions: reload the driver or reboot)"
	case nv.ERROR_GPU_IS_LOST:
		return " (a GPU fell off the bus)"
	}
	return ""
}

// retNames names NVML return codes without calling nvmlErrorString (a call into the library,
// which is never made when the library is not usable).
var retNames = map[nv.Return]string{
	nv.SUCCESS:                       "SUCCESS",
	nv.ERROR_UNINITIALIZED:           "ERROR_UNINITIALIZED",
	nv.ERROR_INVALID_ARGUMENT:        "ERROR_INVALID_ARGUMENT",
	nv.ERROR_NOT_SUPPORTED:           "ERROR_NOT_SUPPORTED",
	nv.ERROR_NO_PERMISSION:           "ERROR_NO_PERMISSION",
	nv.ERROR_ALREADY_INITIALIZED:     "ERROR_ALREADY_INITIALIZED",
	nv.ERROR_NOT_FOUND:               "ERROR_NOT_FOUND",
	nv.ERROR_INSUFFICIENT_SIZE:       "ERROR_INSUFFICIENT_SIZE",
	nv.ERROR_INSUFFICIENT_POWER:      "ERROR_INSUFFICIENT_POWER",
	nv.ERROR_DRIVER_NOT_LOADED:       "ERROR_DRIVER_NOT_LOADED",
	nv.ERROR_TIMEOUT:                 "ERROR_TIMEOUT",
	nv.ERROR_IRQ_ISSUE:               "ERROR_IRQ_ISSUE",
	nv.ERROR_LIBRARY_NOT_FOUND:       "ERROR_LIBRARY_NOT_FOUND",
	nv.ERROR_FUNCTION_NOT_FOUND:      "ERROR_FUNCTION_NOT_FOUND",
	nv.ERROR_CORRUPTED_INFOROM:       "ERROR_CORRUPTED_INFOROM",
	nv.ERROR_GPU_IS_LOST:             "ERROR_GPU_IS_LOST",
	nv.ERROR_RESET_REQUIRED:          "ERROR_RESET_REQUIRED",
	nv.ERROR_OPERATING_SYSTEM:        "ERROR_OPERATING_SYSTEM",
	nv.ERROR_LIB_RM_VERSION_MISMATCH: "ERROR_LIB_RM_VERSION_MISMATCH",
	nv.ERROR_IN_USE:                  "ERROR_IN_USE",
	nv.ERROR_MEMORY:                  "ERROR_MEMORY",
	nv.ERROR_NO_DATA:                 "ERROR_NO_DATA",
	nv.ERROR_VGPU_ECC_NOT_SUPPORTED:  "ERROR_VGPU_ECC_NOT_SUPPORTED",
	nv.ERROR_UNKNOWN:                 "ERROR_UNKNOWN",
}

func retName(r nv.Return) string {
	if s, ok := retNames[r]; ok {
		return s
	}
	return fmt.Sprintf("NVML error %d", int32(r))
}

// nvError is an NVML call that failed.
type nvError struct {
	call string
	ret  nv.Return
}

func (e *nvError) Error() string { return e.call + ": " + retName(e.ret) }

func callErr(call string, ret nv.Return) error {
	if ret == nv.SUCCESS {
		return nil
	}
	return &nvError{call: call, ret: ret}
}
