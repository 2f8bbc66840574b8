package loader

import "testing"

// TestSetSettingsKeepsResolvedArtifacts: a Configure with the same settings keeps the resolved
// artifacts (re-resolving would hash every weight file again); changed settings drop them.
func TestSetSettingsKeepsResolvedArtifacts(t *testing.T) {
	l := New()
	l.resolved["ref"] = &entry{}
	l.SetSettings(l.Settings())
	if l.resolved["ref"] == nil {
		t.Fatal("the same settings dropped the resolved artifacts")
	}
	s := l.Settings()
	s.CacheDir = t.TempDir()
	l.SetSettings(s)
	if l.resolved["ref"] != nil {
		t.Fatal("changed settings kept artifacts resolved under the old ones")
	}
}
