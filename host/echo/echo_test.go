package echo

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValueAndQuote(t *testing.T) {
	short := strings.Repeat("a", MaxRunes)
	if Value(short) != short || Quote(short) != `"`+short+`"` {
		t.Errorf("a value of %d characters was changed", MaxRunes)
	}
	big := strings.Repeat("x", 50<<20)
	v := Value(big)
	if want := strings.Repeat("x", MaxRunes) + "… (52428800 bytes)"; v != want {
		t.Errorf("Value of 50 MiB = %q…, want %q", v[:40], want[:40])
	}
	if q := Quote(big); q != `"`+strings.Repeat("x", MaxRunes)+`"… (52428800 bytes)` {
		t.Errorf("Quote of 50 MiB = %.60q", q)
	}
	// Multi-byte characters are never split, and count as one.
	wide := strings.Repeat("é", MaxRunes+1)
	v = Value(wide)
	head := strings.TrimSuffix(v, "… (402 bytes)")
	if head == v || !utf8.ValidString(v) || utf8.RuneCountInString(head) != MaxRunes {
		t.Errorf("Value of %d 'é' = %q", MaxRunes+1, v)
	}
	if Value(strings.Repeat("é", MaxRunes)) != strings.Repeat("é", MaxRunes) {
		t.Error("200 two-byte characters were cut")
	}
}

func TestLines(t *testing.T) {
	msg := "short line\n" + strings.Repeat("y", 3*MaxLineRunes) + "\nlast"
	got := Lines(msg)
	lines := strings.Split(got, "\n")
	if len(lines) != 3 || lines[0] != "short line" || lines[2] != "last" ||
		lines[1] != strings.Repeat("y", MaxLineRunes)+"… (line of 6000 bytes cut)" {
		t.Errorf("Lines = %.100q", got)
	}
	if Lines("ok\nfine") != "ok\nfine" {
		t.Error("short lines changed")
	}
}
