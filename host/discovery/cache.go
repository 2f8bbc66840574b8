package discovery

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/lemctl/lemctl/host/atomicfile"
	"github.com/lemctl/lemctl/sdk"
)

// cacheFormat changes whenever the cache file's layout or the meaning of an entry changes; a file
// of another format is ignored and rewritten.
const cacheFormat = 1

// CacheFileName is the name of the Info cache inside the cache directory.
const CacheFileName = "plugin-info.json"

// cacheFile is the on-disk cache: what each healthy plugin binary answered, keyed by its path and
// valid only while its size and modification time are unchanged.
type cacheFile struct {
	Format int `json:"format"`
	// APIVersions are the host's; a host speaking other versions judges plugins differently.
	APIVersions []int                 `json:"api_versions"`
	Entries     map[string]cacheEntry `json:"entries"`
}

type cacheEntry struct {
	Size      int64    `json:"size"`
	ModTimeNs int64    `json:"mtime_ns"`
	SHA256    string   `json:"sha256"`
	Info      sdk.Info `json:"info"`
}

// infoCache is the in-memory cache of one discovery. Only plugins that answered Info and passed
// the probe are cached: a failure is retried next time, so a fix in the plugin's environment is
// seen at once.
type infoCache struct {
	path    string // "" when caching is off
	mu      sync.Mutex
	entries map[string]cacheEntry
	dirty   bool
}

// loadCache reads the cache at path. A missing, unreadable, corrupt or foreign-format file yields
// an empty cache (it is rewritten on save); the error, if any, is for a debug log only.
func loadCache(path string) (*infoCache, error) {
	c := &infoCache{path: path, entries: map[string]cacheEntry{}}
	if path == "" {
		return c, nil
	}
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		c.dirty = true
		return c, fmt.Errorf("read plugin info cache %s: %w", path, err)
	}
	var f cacheFile
	if err := json.Unmarshal(raw, &f); err != nil {
		c.dirty = true
		return c, fmt.Errorf("plugin info cache %s is corrupt (ignored, will be rewritten): %w", path, err)
	}
	if f.Format != cacheFormat || !slices.Equal(f.APIVersions, sdk.SupportedAPIVersions) {
		c.dirty = true
		return c, fmt.Errorf("plugin info cache %s has format %d for API versions %v (ignored, will be rewritten)", path, f.Format, f.APIVersions)
	}
	if f.Entries != nil {
		c.entries = f.Entries
	}
	return c, nil
}

// get returns the cached entry for a binary whose size and modification time still match.
func (c *infoCache) get(path string, size, mtimeNs int64) (cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[path]
	if !ok || e.Size != size || e.ModTimeNs != mtimeNs {
		return cacheEntry{}, false
	}
	return e, true
}

func (c *infoCache) put(path string, e cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries[path] = e
	c.dirty = true
}

// drop forgets path (its binary changed and no longer answers).
func (c *infoCache) drop(path string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[path]; ok {
		delete(c.entries, path)
		c.dirty = true
	}
}

// save writes the cache atomically (temporary file in the same directory, then rename) when it
// changed, after dropping the entries of binaries that no longer exist.
func (c *infoCache) save() error {
	if c.path == "" {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for p := range c.entries {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			delete(c.entries, p)
			c.dirty = true
		}
	}
	if !c.dirty {
		return nil
	}
	raw, err := json.MarshalIndent(cacheFile{Format: cacheFormat, APIVersions: sdk.SupportedAPIVersions, Entries: c.entries}, "", " ")
	if err != nil {
		return fmt.Errorf("encode plugin info cache: %w", err)
	}
	if err := writeAtomic(c.path, raw, 0o600); err != nil {
		return fmt.Errorf("write plugin info cache: %w", err)
	}
	c.dirty = false
	return nil
}

// DefaultCacheDir is os.UserCacheDir()/lemctl, or "" when the user has no cache directory.
func DefaultCacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "lemctl")
}

// writeAtomic creates path's directory and writes data there with atomicfile.Write (a reader
// sees the old or the new content, never a torn file).
func writeAtomic(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	return atomicfile.Write(path, data, perm)
}
