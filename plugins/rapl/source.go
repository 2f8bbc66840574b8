package rapl

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/lemctl/lemctl/sdk/clock"
	"github.com/lemctl/lemctl/sdk/sampler"
)

// Source reads the energy_uj counters of one session's zones. It is a sampler.Source: the
// sampler turns the raw counters into wrap- and reset-corrected cumulative energy.
type Source struct {
	fsys    fs.FS
	root    string // shown in errors
	entries []sourceEntry
}

type sourceEntry struct {
	id     string
	file   string // energy_uj inside fsys; "" when the domain is unavailable
	reason string // why unavailable
}

var _ sampler.Source = (*Source)(nil)

// NewSource returns a source reading the given zones of fsys (root is what fsys stands for, for
// messages). Unavailable zones are read as errors carrying their reason.
func NewSource(fsys fs.FS, root string, zones []Zone) *Source {
	s := &Source{fsys: fsys, root: root}
	for _, z := range zones {
		if z.Available {
			s.entries = append(s.entries, sourceEntry{id: z.ID(), file: z.File("energy_uj")})
		} else {
			s.entries = append(s.entries, sourceEntry{id: z.ID(), reason: z.Reason})
		}
	}
	return s
}

// Read reads every zone's counter once, each stamped with the monotonic time right after its
// read. RAPL has no slow fields, so slow changes nothing. A zone that cannot be read gets a
// Reading with Err set (and the fix, for a permission error); the others are still read.
func (s *Source) Read(ctx context.Context, slow bool) ([]sampler.Reading, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]sampler.Reading, 0, len(s.entries))
	for _, e := range s.entries {
		r := sampler.NewReading(e.id)
		if e.file == "" {
			r.Err = errors.New(e.reason)
			out = append(out, r)
			continue
		}
		v, err := readUint(s.fsys, e.file)
		r.MonoNS = clock.Mono()
		if err != nil {
			shown := filepath.Join(s.root, filepath.FromSlash(e.file))
			if errors.Is(err, fs.ErrPermission) {
				r.Err = fmt.Errorf("read %s: %w; %s", shown, err, PermissionFix)
			} else {
				r.Err = fmt.Errorf("read %s: %w", shown, err)
			}
		} else {
			r.Counter = v
		}
		out = append(out, r)
	}
	return out, nil
}

// Close releases nothing: every read opens and closes its file, since a sysfs attribute must be
// re-read from offset 0 to get a fresh value.
func (s *Source) Close() error { return nil }
