package discovery

import "testing"

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		want int
	}{
		{"equal", "1.2.3", "1.2.3", 0},
		{"leading v", "v1.2.3", "1.2.3", 0},
		{"build metadata ignored", "1.2.3+abc", "1.2.3+def", 0},
		{"major", "2.0.0", "1.9.9", 1},
		{"minor", "1.10.0", "1.9.0", 1},
		{"patch numeric not lexical", "1.0.10", "1.0.9", 1},
		{"missing patch is zero", "1.2", "1.2.0", 0},
		{"release beats pre-release", "1.0.0", "1.0.0-rc.1", 1},
		{"numeric pre-release ids", "1.0.0-rc.10", "1.0.0-rc.9", 1},
		{"numeric below alphanumeric", "1.0.0-1", "1.0.0-alpha", -1},
		{"longer pre-release higher", "1.0.0-alpha.1", "1.0.0-alpha", 1},
		{"alphanumeric lexical", "1.0.0-beta", "1.0.0-alpha", 1},
		{"invalid below valid", "dev", "0.0.1", -1},
		{"valid above invalid", "0.0.1", "", 1},
		{"two invalid equal", "dev", "", 0},
		{"empty pre-release invalid", "1.0.0-", "0.1.0", -1},
		{"four parts invalid", "1.2.3.4", "0.0.1", -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := compareVersions(tc.a, tc.b); got != tc.want {
				t.Errorf("compareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
			}
			if got := compareVersions(tc.b, tc.a); got != -tc.want {
				t.Errorf("compareVersions(%q, %q) = %d, want %d (antisymmetry)", tc.b, tc.a, got, -tc.want)
			}
		})
	}
}
