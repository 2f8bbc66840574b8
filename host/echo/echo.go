// Package echo cuts user-supplied values (config values, flags, file contents, names) to a
// readable length before lemctl echoes them in an error, a warning or a log line: a 50 MB config
// value is shown as its first MaxRunes characters and its size, never in full.
//
// It must never change a value that is short enough, never cut inside a UTF-8 character, and
// never hide that a value was cut.
package echo

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxRunes is how many characters of a value are echoed.
const MaxRunes = 200

// MaxLineRunes bounds each line of a message printed as a whole (Lines): long enough for any
// message lemctl writes, short enough to read.
const MaxLineRunes = 2000

// cut returns s's first n characters and whether s was longer.
func cut(s string, n int) (string, bool) {
	if len(s) <= n { // n characters are at least n bytes
		return s, false
	}
	i, count := 0, 0
	for i < len(s) && count < n {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
		count++
	}
	return s[:i], i < len(s)
}

// Value returns s, or its first MaxRunes characters followed by "… (N bytes)".
func Value(s string) string {
	head, cutOff := cut(s, MaxRunes)
	if !cutOff {
		return s
	}
	return fmt.Sprintf("%s… (%d bytes)", head, len(s))
}

// Quote returns s quoted as strconv.Quote does, or its first MaxRunes characters quoted followed
// by "… (N bytes)".
func Quote(s string) string {
	head, cutOff := cut(s, MaxRunes)
	if !cutOff {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%s… (%d bytes)", strconv.Quote(head), len(s))
}

// Lines cuts every line of msg longer than MaxLineRunes characters as Value does: the last
// guard before a message reaches the terminal, for values echoed by code that did not cut them
// (a plugin's error message that quotes a config value).
func Lines(msg string) string {
	if len(msg) <= MaxLineRunes {
		return msg
	}
	lines := strings.Split(msg, "\n")
	for i, l := range lines {
		if head, cutOff := cut(l, MaxLineRunes); cutOff {
			lines[i] = fmt.Sprintf("%s… (line of %d bytes cut)", head, len(l))
		}
	}
	return strings.Join(lines, "\n")
}
