// Package version holds the lemctl version and commit, set at build time with -ldflags
// "-X github.com/lemctl/lemctl/host/version.Version=… -X …Commit=…".
package version

import "runtime/debug"

// Set by the linker; the defaults describe a build without the Makefile.
var (
	Version = "0.1.0-dev"
	Commit  = ""
)

// CommitOrUnknown returns the commit the binary was built from, falling back to the VCS stamp
// Go embeds, then to "unknown".
func CommitOrUnknown() string {
	if Commit != "" {
		return Commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}
