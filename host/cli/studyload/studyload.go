// Package studyload reads what `lemctl compare` and `lemctl frontier` compare: stored studies
// (<results dir>/studies/<id>/study.json, the shape of host/study) and experiments' aggregates
// (through the results repository), behind the small loaders those commands define. It only
// reads: it must never write to or change a results directory.
package studyload

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/lemctl/lemctl/host/cliutil"
	"github.com/lemctl/lemctl/host/results"
	"github.com/lemctl/lemctl/host/study"
	"github.com/lemctl/lemctl/sdk"
)

// ErrNoStudy is wrapped by Files.LoadStudy when the results directory has no such study.
var ErrNoStudy = errors.New("no such study")

// Files reads studies from a results directory, where `lemctl sweep` stores them (host/study:
// Dir/studies/<id>/study.json).
type Files struct {
	Dir string
}

// Path is where the study id is stored.
func (f Files) Path(id string) string {
	return filepath.Join(study.Dir(f.Dir, id), study.AggregateName)
}

// LoadStudy reads and checks the stored study id (study.Load).
func (f Files) LoadStudy(_ context.Context, id string) (*study.Aggregate, error) {
	if err := study.CheckID(id); err != nil {
		return nil, cliutil.Usage(err)
	}
	if fi, err := os.Stat(f.Dir); err != nil || !fi.IsDir() {
		why := "not a directory"
		if errors.Is(err, fs.ErrNotExist) {
			why = "does not exist"
		}
		return nil, cliutil.Usagef("--results-dir %s: %s (studies are stored there by lemctl sweep; pass the directory you ran with)", f.Dir, why)
	}
	s, _, err := study.Load(f.Dir, id)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, cliutil.Failed(fmt.Errorf("study %s: %w (%s does not exist)", id, ErrNoStudy, f.Path(id)))
	}
	if err != nil {
		return nil, cliutil.Failed(fmt.Errorf("study %s: %w", id, err))
	}
	return s, nil
}

// Exists reports whether the results directory holds a study called id.
func (f Files) Exists(id string) bool { return study.Exists(f.Dir, id) }

// Aggregates loads experiments' aggregates through a results repository.
type Aggregates struct {
	Repo sdk.Repository
}

// LoadAggregate reads and decodes the aggregate of experiment id.
func (a Aggregates) LoadAggregate(ctx context.Context, id string) (*results.Aggregated, error) {
	data, err := a.Repo.LoadAggregated(ctx, id)
	if errors.Is(err, sdk.ErrNotFound) {
		return nil, cliutil.Failed(fmt.Errorf("experiment %s has no aggregate (is it an experiment id? run `lemctl results list`, or `lemctl aggregate %s`): %w", id, id, err))
	}
	if errors.Is(err, sdk.ErrInvalidArgument) {
		return nil, cliutil.Usage(fmt.Errorf("experiment id %q: %w", id, err))
	}
	if err != nil {
		return nil, cliutil.Failed(fmt.Errorf("load the aggregate of %s: %w", id, err))
	}
	agg, err := results.DecodeAggregated(data)
	if err != nil {
		return nil, cliutil.Failed(fmt.Errorf("the aggregate of %s: %w", id, err))
	}
	return agg, nil
}

// Point finds the point id of s ("p01"), or says which points there are.
func Point(s *study.Aggregate, id string) (*study.PointAggregate, error) {
	var ids []string
	for i := range s.Points {
		if s.Points[i].ID == id {
			return &s.Points[i], nil
		}
		ids = append(ids, s.Points[i].ID)
	}
	return nil, cliutil.Usagef("study %s has no point %q (its points: %s)", s.StudyID, id, strings.Join(ids, ", "))
}
