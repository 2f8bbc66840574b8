package discovery

import (
	"strconv"
	"strings"
)

// version is a parsed semantic version (https://semver.org): MAJOR.MINOR.PATCH[-PRE][+BUILD],
// with an optional leading "v". A missing minor or patch counts as 0.
type version struct {
	nums [3]uint64
	pre  []string
}

// parseVersion parses s; ok is false when s is not a semantic version.
func parseVersion(s string) (v version, ok bool) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "v")
	if i := strings.IndexByte(s, '+'); i >= 0 {
		s = s[:i]
	}
	if i := strings.IndexByte(s, '-'); i >= 0 {
		if i == len(s)-1 {
			return version{}, false
		}
		v.pre = strings.Split(s[i+1:], ".")
		for _, id := range v.pre {
			if id == "" {
				return version{}, false
			}
		}
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	if len(parts) == 0 || len(parts) > 3 {
		return version{}, false
	}
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return version{}, false
		}
		v.nums[i] = n
	}
	return v, true
}

// compareVersions orders plugin version strings: -1 if a < b, 0 if equal, +1 if a > b. A string
// that is not a semantic version sorts below every one that is; two such strings are equal.
func compareVersions(a, b string) int {
	va, oka := parseVersion(a)
	vb, okb := parseVersion(b)
	switch {
	case !oka && !okb:
		return 0
	case !oka:
		return -1
	case !okb:
		return 1
	}
	for i := range va.nums {
		if va.nums[i] != vb.nums[i] {
			if va.nums[i] < vb.nums[i] {
				return -1
			}
			return 1
		}
	}
	return comparePre(va.pre, vb.pre)
}

// comparePre orders pre-release identifiers per semver §11: a version without a pre-release is
// higher; numeric identifiers compare numerically and below alphanumeric ones; a longer list of
// equal prefix is higher.
func comparePre(a, b []string) int {
	switch {
	case len(a) == 0 && len(b) == 0:
		return 0
	case len(a) == 0:
		return 1
	case len(b) == 0:
		return -1
	}
	for i := 0; i < len(a) && i < len(b); i++ {
		na, ea := strconv.ParseUint(a[i], 10, 64)
		nb, eb := strconv.ParseUint(b[i], 10, 64)
		switch {
		case ea == nil && eb == nil:
			if na != nb {
				if na < nb {
					return -1
				}
				return 1
			}
		case ea == nil:
			return -1
		case eb == nil:
			return 1
		default:
			if c := strings.Compare(a[i], b[i]); c != 0 {
				return c
			}
		}
	}
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	}
	return 0
}
