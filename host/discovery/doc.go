// Package discovery finds lemctl plugin binaries, decides which ones may run, and starts them.
//
// It searches, in order, the --plugin-dir directories, the colon-separated $LEM_PLUGIN_PATH and
// <dir of lemctl>/plugins for executables named lem-plugin-<name>; it never searches the working
// directory implicitly. Each candidate is started, asked its Info, probed for every kind it
// claims and killed; the answer is cached by path, size and modification time in the user cache
// directory. Of several plugins with one name, the one in a --plugin-dir wins, else the highest
// version, and a warning names what was shadowed. A plugin directory may be pinned by a lock file
// (sha256 per binary, written by `lemctl plugins lock`): a binary whose hash differs is refused
// before it runs. The Catalog that Discover returns opens plugins for the rest of the host,
// checksum-pinned where a lock applies, with their stderr logs forwarded through hclog:
// OpenConfigured is the one way to find, check, start and configure a plugin (a refused table is
// a *ConfigRejected); a Session holds one process per plugin for a whole command (a run's
// parent); PinnedOpener is the same for a worker, from the path and sha256 of its launch spec.
//
// This package must never run a binary whose lock entry differs or which lives in (or is) a
// world-writable location, never load from the working directory unless told to, never let one
// bad plugin hide the others, and never leave a plugin process running on any exit path: every
// process it starts is killed before Discover returns or when its Client (or the Catalog) is
// closed, and dies with the host even when the host is SIGKILLed (parent-death signal set by the
// sdk).
package discovery
