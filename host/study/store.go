package study

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"

	"github.com/lemctl/lemctl/host/atomicfile"
	"github.com/lemctl/lemctl/host/results"
)

// Stored files of a study, under <results dir>/studies/<study id>/ (docs/studies.md).
const (
	StudiesDir    = "studies"
	AggregateName = "study.json"
	ManifestName  = "manifest.json"
	// KindManifest is the "kind" of a study manifest.
	KindManifest = "study_manifest"
)

// Manifest is the sweep's own record of a study: the study file, the points with their config
// hashes, and every experiment started, written atomically after each experiment. Resume reads it.
type Manifest struct {
	SchemaVersion string `json:"schema_version"`
	Kind          string `json:"kind"`
	StudyID       string `json:"study_id"`
	// StudyFile is the study file's path as given, StudyDir the absolute directory its base is
	// relative to, and StudyTOML its text when the sweep started (resume parses it again).
	StudyFile string  `json:"study_file"`
	StudyDir  string  `json:"study_dir"`
	StudyTOML string  `json:"study_toml"`
	Points    []Point `json:"points"`
	// ConfigHashes are the points' config hashes, by point id, as last validated.
	ConfigHashes map[string]string `json:"config_hashes"`
	Schedule     []Slot            `json:"schedule"`
	Runs         []Run             `json:"runs"`
	State        string            `json:"state"`
	Error        string            `json:"error,omitempty"`
	StartUnixNS  int64             `json:"start_unix_ns"`
	EndUnixNS    *int64            `json:"end_unix_ns"`
	// Resumed counts the times `sweep --resume` continued the study.
	Resumed       int    `json:"resumed"`
	LemctlVersion string `json:"lemctl_version"`
	// ThermalReferenceC are the meters' temperatures by domain read before the study's first
	// experiment, the reference of the thermal wait (kept on resume); absent when none was read.
	ThermalReferenceC map[string]float64 `json:"thermal_reference_c,omitempty"`
}

// Run is one experiment the sweep started: a point's cycle.
type Run struct {
	Point        string `json:"point"`
	Cycle        int    `json:"cycle"`
	ConfigHash   string `json:"config_hash"`
	ExperimentID string `json:"experiment_id"`
	// State is results.State*: completed (aggregated), failed or interrupted.
	State       string `json:"state"`
	Error       string `json:"error,omitempty"`
	StartUnixNS int64  `json:"start_unix_ns"`
	EndUnixNS   int64  `json:"end_unix_ns"`
	// ThermalWait is the thermal wait before this run, when one ran (docs/studies.md, "Gap and
	// thermal wait").
	ThermalWait *ThermalWait `json:"thermal_wait,omitempty"`
}

// ThermalWait is one wait, after the gap, for the meters' temperatures to come back within
// the study's thermal_tolerance_c of the reference.
type ThermalWait struct {
	WaitedS float64 `json:"waited_s"`
	// TimedOut is true when thermal_max_wait_s passed before every domain was within tolerance;
	// Warning then says which domain, the temperature it reached and the reference.
	TimedOut bool            `json:"timed_out"`
	Warning  string          `json:"warning,omitempty"`
	Domains  []ThermalDomain `json:"domains"`
}

// ThermalDomain is one domain's temperature at the end of a thermal wait and its reference.
type ThermalDomain struct {
	Domain string `json:"domain"`
	// ReachedC is the last temperature read (absent when the last read had none).
	ReachedC   *float64 `json:"reached_c"`
	ReferenceC float64  `json:"reference_c"`
}

var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$`)

// CheckID refuses a study id that is not a single safe path element.
func CheckID(id string) error {
	if !validID.MatchString(id) || id == "." || id == ".." {
		return fmt.Errorf("study id %q: valid ids are letters, digits, '_', '-' and '.', as `lemctl sweep` prints them", id)
	}
	return nil
}

// Dir is the study's directory under a results directory.
func Dir(resultsDir, id string) string { return filepath.Join(resultsDir, StudiesDir, id) }

// Exists reports whether resultsDir holds a study id (its study.json or its manifest).
func Exists(resultsDir, id string) bool {
	if CheckID(id) != nil {
		return false
	}
	for _, n := range []string{AggregateName, ManifestName} {
		if _, err := os.Stat(filepath.Join(Dir(resultsDir, id), n)); err == nil {
			return true
		}
	}
	return false
}

// List returns the ids of the studies under resultsDir, sorted (ids sort by start time).
func List(resultsDir string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(resultsDir, StudiesDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range ents {
		if e.IsDir() && Exists(resultsDir, e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	sort.Strings(ids)
	return ids, nil
}

func writeJSON(path string, v any) ([]byte, error) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	data = append(data, '\n')
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return data, atomicfile.Write(path, data, 0o644)
}

// SaveManifest writes m atomically.
func SaveManifest(resultsDir string, m *Manifest) error {
	_, err := writeJSON(filepath.Join(Dir(resultsDir, m.StudyID), ManifestName), m)
	return err
}

// LoadManifest reads a study's manifest.
func LoadManifest(resultsDir, id string) (*Manifest, error) {
	if err := CheckID(id); err != nil {
		return nil, err
	}
	path := filepath.Join(Dir(resultsDir, id), ManifestName)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if m.Kind != KindManifest || m.StudyID != id {
		return nil, fmt.Errorf("%s: not the manifest of study %s (kind %q, study_id %q)", path, id, m.Kind, m.StudyID)
	}
	return &m, nil
}

// Save writes a study aggregate atomically and returns the bytes written and their path.
func Save(resultsDir string, a *Aggregate) ([]byte, string, error) {
	path := filepath.Join(Dir(resultsDir, a.StudyID), AggregateName)
	data, err := writeJSON(path, a)
	return data, path, err
}

// Load reads a study aggregate and the bytes it was decoded from.
func Load(resultsDir, id string) (*Aggregate, []byte, error) {
	if err := CheckID(id); err != nil {
		return nil, nil, err
	}
	path := filepath.Join(Dir(resultsDir, id), AggregateName)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var a Aggregate
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if a.Kind != Kind || a.SchemaVersion != SchemaVersion {
		return nil, nil, fmt.Errorf("%s: not a study aggregate of schema %s (kind %q, schema_version %q)", path, SchemaVersion, a.Kind, a.SchemaVersion)
	}
	return &a, data, nil
}

// Resumable reports whether `sweep --resume` can continue the study: it did not complete.
func (m *Manifest) Resumable() bool { return m.State != results.StateCompleted }
