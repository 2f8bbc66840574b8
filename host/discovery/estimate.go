package discovery

import (
	"sort"

	"github.com/lemctl/lemctl/sdk"
)

// estimateOnly reports whether an inventory lists only estimated domains (method estimate): the
// meter models energy and reads no counter.
func estimateOnly(inv []sdk.Domain) bool {
	for _, d := range inv {
		if d.Method != sdk.MethodEstimate {
			return false
		}
	}
	return len(inv) > 0
}

// realMeterBeside returns, when name's inventory is estimate-only, the first (by name) other
// meter that answered with an available measured domain: then "auto" leaves the estimate out. It
// returns "" when name is a real meter or no real meter can measure here.
func realMeterBeside(name string, inv []sdk.Domain, answered map[string][]sdk.Domain) string {
	if !estimateOnly(inv) {
		return ""
	}
	var others []string
	for n := range answered {
		others = append(others, n)
	}
	sort.Strings(others)
	for _, n := range others {
		if n == name || estimateOnly(answered[n]) {
			continue
		}
		for _, d := range answered[n] {
			if d.Available && d.Method != sdk.MethodEstimate {
				return n
			}
		}
	}
	return ""
}
