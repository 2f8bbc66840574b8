package config

import (
	"strconv"
	"strings"
)

// keySep joins the segments of a key path in the line index and in Config.Sources. Segments may
// contain dots (quoted TOML keys), so the index never splits on ".".
const keySep = "\x1f"

// pathKey joins key segments into an index key.
func pathKey(segs ...string) string { return strings.Join(segs, keySep) }

// displayPath writes key segments the way a user writes them in TOML: dotted, with a segment
// quoted when it is not a bare key.
func displayPath(segs ...string) string {
	parts := make([]string, len(segs))
	for i, s := range segs {
		if isBareKey(s) {
			parts[i] = s
		} else {
			parts[i] = strconv.Quote(s)
		}
	}
	return strings.Join(parts, ".")
}

func isBareKey(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// indexKeyLines maps every key path defined in a TOML document to the 1-based line where it is
// first defined: table headers, array-of-table headers, plain, dotted and inline-table keys
// (every prefix of a dotted key is indexed too). BurntSushi/toml v1.6.0 records key positions
// only in unexported fields of MetaData, so the host indexes them itself.
//
// It is run on documents that parsed, but it is written to survive any input without panicking:
// on text it does not understand it skips to the next line.
func indexKeyLines(data []byte) map[string]int {
	s := &keyScanner{src: data, line: 1, lines: map[string]int{}}
	s.document()
	return s.lines
}

type keyScanner struct {
	src   []byte
	pos   int
	line  int
	table []string
	lines map[string]int
}

func (s *keyScanner) eof() bool { return s.pos >= len(s.src) }

func (s *keyScanner) peek(off int) byte {
	if s.pos+off < len(s.src) {
		return s.src[s.pos+off]
	}
	return 0
}

func (s *keyScanner) advance() {
	if s.eof() {
		return
	}
	if s.src[s.pos] == '\n' {
		s.line++
	}
	s.pos++
}

func (s *keyScanner) record(segs []string, line int) {
	for i := 1; i <= len(segs); i++ {
		k := pathKey(segs[:i]...)
		if _, ok := s.lines[k]; !ok {
			s.lines[k] = line
		}
	}
}

// skipSpace skips blanks; with newlines it also skips line ends and comments.
func (s *keyScanner) skipSpace(newlines bool) {
	for !s.eof() {
		switch c := s.peek(0); {
		case c == ' ' || c == '\t' || c == '\r':
			s.advance()
		case c == '#' && newlines:
			s.skipLine()
		case c == '\n' && newlines:
			s.advance()
		default:
			return
		}
	}
}

// skipLine moves past the end of the current line.
func (s *keyScanner) skipLine() {
	for !s.eof() && s.peek(0) != '\n' {
		s.advance()
	}
	s.advance()
}

func (s *keyScanner) document() {
	for {
		s.skipSpace(true)
		if s.eof() {
			return
		}
		start := s.pos
		line := s.line
		switch s.peek(0) {
		case '[':
			array := s.peek(1) == '['
			s.advance()
			if array {
				s.advance()
			}
			segs, ok := s.key()
			if ok {
				s.table = segs
				s.record(segs, line)
			}
			s.skipLine()
		default:
			segs, ok := s.key()
			s.skipSpace(false)
			if !ok || s.peek(0) != '=' {
				s.skipLine()
				break
			}
			s.advance()
			full := append(append([]string(nil), s.table...), segs...)
			s.record(full, line)
			s.skipSpace(false)
			s.value(full)
			s.skipSpace(false)
			if !s.eof() && s.peek(0) != '\n' {
				s.skipLine() // a comment or something we do not understand
			}
		}
		if s.pos == start { // never loop without progress
			s.advance()
		}
	}
}

// key reads a dotted key: bare or quoted segments separated by dots.
func (s *keyScanner) key() ([]string, bool) {
	var segs []string
	for {
		s.skipSpace(false)
		seg, ok := s.keySegment()
		if !ok {
			return segs, false
		}
		segs = append(segs, seg)
		s.skipSpace(false)
		if s.peek(0) != '.' {
			return segs, true
		}
		s.advance()
	}
}

func (s *keyScanner) keySegment() (string, bool) {
	switch c := s.peek(0); {
	case c == '"':
		start := s.pos
		s.advance()
		for !s.eof() && s.peek(0) != '"' && s.peek(0) != '\n' {
			if s.peek(0) == '\\' {
				s.advance()
			}
			s.advance()
		}
		if s.peek(0) != '"' {
			return "", false
		}
		s.advance()
		raw := string(s.src[start:s.pos])
		if u, err := strconv.Unquote(raw); err == nil {
			return u, true
		}
		return raw[1 : len(raw)-1], true
	case c == '\'':
		s.advance()
		start := s.pos
		for !s.eof() && s.peek(0) != '\'' && s.peek(0) != '\n' {
			s.advance()
		}
		if s.peek(0) != '\'' {
			return "", false
		}
		seg := string(s.src[start:s.pos])
		s.advance()
		return seg, true
	default:
		start := s.pos
		for !s.eof() && isBareByte(s.peek(0)) {
			s.advance()
		}
		if s.pos == start {
			return "", false
		}
		return string(s.src[start:s.pos]), true
	}
}

func isBareByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// value skips one value; inline tables record their keys under prefix.
func (s *keyScanner) value(prefix []string) {
	switch s.peek(0) {
	case '"':
		if s.peek(1) == '"' && s.peek(2) == '"' {
			s.multiline('"')
			return
		}
		s.advance()
		for !s.eof() && s.peek(0) != '"' && s.peek(0) != '\n' {
			if s.peek(0) == '\\' {
				s.advance()
			}
			s.advance()
		}
		s.advance()
	case '\'':
		if s.peek(1) == '\'' && s.peek(2) == '\'' {
			s.multiline('\'')
			return
		}
		s.advance()
		for !s.eof() && s.peek(0) != '\'' && s.peek(0) != '\n' {
			s.advance()
		}
		s.advance()
	case '[':
		s.advance()
		for {
			s.skipSpace(true)
			if s.eof() {
				return
			}
			if s.peek(0) == ']' {
				s.advance()
				return
			}
			before := s.pos
			s.value(nil)
			s.skipSpace(true)
			if s.peek(0) == ',' {
				s.advance()
			} else if s.pos == before {
				s.advance()
			}
		}
	case '{':
		s.advance()
		for {
			s.skipSpace(true)
			if s.eof() {
				return
			}
			if s.peek(0) == '}' {
				s.advance()
				return
			}
			before := s.pos
			line := s.line
			segs, ok := s.key()
			s.skipSpace(false)
			if ok && s.peek(0) == '=' {
				s.advance()
				s.skipSpace(false)
				var full []string
				if prefix != nil {
					full = append(append([]string(nil), prefix...), segs...)
					s.record(full, line)
				}
				s.value(full)
			}
			s.skipSpace(true)
			if s.peek(0) == ',' {
				s.advance()
			} else if s.pos == before {
				s.advance()
			}
		}
	default:
		// A scalar: number, boolean or date-time (which may contain a space).
		for !s.eof() {
			switch s.peek(0) {
			case ',', ']', '}', '#', '\n':
				return
			}
			s.advance()
		}
	}
}

// multiline skips a multi-line string opened by three q characters, including up to two extra
// quote characters that belong to the content before the closing delimiter.
func (s *keyScanner) multiline(q byte) {
	s.advance()
	s.advance()
	s.advance()
	for !s.eof() {
		c := s.peek(0)
		if c == '\\' && q == '"' {
			s.advance()
			s.advance()
			continue
		}
		if c == q && s.peek(1) == q && s.peek(2) == q {
			s.advance()
			s.advance()
			s.advance()
			for i := 0; i < 2 && s.peek(0) == q; i++ {
				s.advance()
			}
			return
		}
		s.advance()
	}
}
