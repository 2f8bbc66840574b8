package nvml

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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

// LibraryOpener returns a Driver for the library at path ("" means the loader's default,
// libnvidia-ml.so.1 on the loader's search path). It must not call Init: the caller does, and
// makes no other call on the driver unless Init succeeded. Tests return fakes.
type LibraryOpener func(path string) Driver

// library is NVML after a successful Init. drv is the only handle the meter ever calls.
type library struct {
	drv  Driver
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
		drv := open(p)
		err := drv.Init()
		if err == nil {
			return &library{drv: drv, path: p}, nil
		}
		if code := codeOf(err); code != CodeLibraryNotFound {
			// The library loaded but nvmlInit failed: no other NVML call is made.
			return nil, &initError{tried: append(tried, displayPath(p)),
				reason: fmt.Sprintf("NVML library %s loaded, but nvmlInit failed: %s%s", displayPath(p), code, initHint(code))}
		}
		what := "not found"
		if p != "" {
			if _, err := stat(p); err == nil {
				what = "exists but could not be loaded (wrong architecture or missing dependencies?)"
			} else if !errors.Is(err, fs.ErrNotExist) {
				what = "unreadable: " + err.Error()
			}
		}
		tried = append(tried, displayPath(p)+": "+what)
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

func initHint(code string) string {
	switch code {
	case CodeDriverNotLoaded:
		return " (the NVIDIA kernel driver is not loaded)"
	case CodeNoPermission:
		return " (no permission to open the GPU device files)"
	case CodeRMVersionMismatch:
		return " (the NVML library and the kernel driver have different versions: reload the driver or reboot)"
	case CodeGPUIsLost:
		return " (a GPU fell off the bus)"
	}
	return ""
}
