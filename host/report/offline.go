package report

import (
	"regexp"
	"strings"
)

var (
	attrRef = regexp.MustCompile(`(?i)\s(?:src|href|xlink:href|action|poster|srcset|data)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))`)
	cssRef  = regexp.MustCompile(`(?i)url\(\s*(?:"([^"]*)"|'([^']*)'|([^)]*))\s*\)|@import\s+[^;]+`)
)

// NetworkRefs returns the references of page that a browser would fetch: every src, href or
// CSS url() whose target is not an inline data: URL or an in-page #fragment (an http(s) URL, a
// relative or absolute path), and every @import. A report page has none (reportcmd refuses to
// write one that has).
func NetworkRefs(page []byte) []string {
	var out []string
	check := func(m [][]byte, whole []byte) {
		target := ""
		for _, g := range m[1:] {
			if len(g) > 0 {
				target = strings.TrimSpace(string(g))
				break
			}
		}
		lower := strings.ToLower(target)
		if strings.HasPrefix(lower, "data:") || strings.HasPrefix(target, "#") {
			return
		}
		s := string(whole)
		if len(s) > 120 {
			s = s[:120] + "…"
		}
		out = append(out, strings.TrimSpace(s))
	}
	for _, m := range attrRef.FindAllSubmatch(page, -1) {
		check(m, m[0])
	}
	for _, m := range cssRef.FindAllSubmatch(page, -1) {
		if len(m) > 1 && strings.HasPrefix(strings.ToLower(string(m[0])), "@import") {
			out = append(out, string(m[0]))
			continue
		}
		check(m, m[0])
	}
	return out
}
