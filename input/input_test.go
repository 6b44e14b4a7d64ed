package input

import (
	"strings"
	"testing"
)

func TestChecks(t *testing.T) {
	for _, c := range []struct {
		name, s   string
		max       int
		line, txt string // the problems Line and Text find, "" for none
	}{
		{"plain", "Finance reports", 200, "", ""},
		{"2000 €", strings.Repeat("€", 2000), 2000, "", ""},
		{"2001 €", strings.Repeat("€", 2001), 2000, "at most 2000 characters", "at most 2000 characters"},
		{"NUL", "a\x00b", 200, "control characters", "control characters"},
		{"DEL", "a\x7f", 200, "control characters", "control characters"},
		{"CR LF", "Task\r\nBcc: x", 200, "one line", ""},
		{"tab", "a\tb", 200, "control characters", ""},
		{"NEL", "a\u0085b", 200, "one line", "control characters"},
		{"invalid UTF-8", "caf\xe9", 200, "UTF-8", "UTF-8"},
	} {
		if got := Line(c.s, c.max); (c.line == "") != (got == "") || !strings.Contains(got, c.line) {
			t.Errorf("Line(%s) = %q, want %q", c.name, got, c.line)
		}
		if got := Text(c.s, c.max); (c.txt == "") != (got == "") || !strings.Contains(got, c.txt) {
			t.Errorf("Text(%s) = %q, want %q", c.name, got, c.txt)
		}
	}
	if got := Search(" a\x00b\xff\n "); got != "ab" {
		t.Errorf("Search = %q", got)
	}
	if got := Search(strings.Repeat("€", 300)); got != strings.Repeat("€", MaxSearch) {
		t.Errorf("Search of 300 € = %d characters", len([]rune(got)))
	}
	for id, want := range map[string]bool{
		"6ba7b810-9dad-11d1-80b4-00c04fd430c8": true, "6BA7B810-9DAD-11D1-80B4-00C04FD430C8": false,
		"{6ba7b810-9dad-11d1-80b4-00c04fd430c8}": false, "urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8": false,
		"6ba7b8109dad11d180b400c04fd430c8": false, "abc": false, "": false,
	} {
		if ID(id) != want {
			t.Errorf("ID(%q) = %v", id, !want)
		}
	}
	for raw, path := range map[string]string{`{"a":{"b":["x","y\u0000"]}}`: "a.b[1]", `{"a":"\ud800"}`: "", `{"a\u0001":1}`: ""} {
		if p, msg := JSON([]byte(raw)); msg == "" || p != path {
			t.Errorf("JSON(%s) = %q %q, want a problem at %q", raw, p, msg, path)
		}
	}
	if p, msg := JSON([]byte(`{"url":"ldaps://x","multi":"a\nb"}`)); msg != "" {
		t.Errorf("JSON of good settings: %q %q", p, msg)
	}
}
