// Package input checks the text and ids that come from outside (the API,
// the portal's forms, the command line) the same way everywhere, before
// they reach a query: so that SQLite and PostgreSQL answer alike (NUL and
// invalid UTF-8 are stored by one and refused by the other), lengths are
// counted in characters, and names stay on one line.
//
// The checks return the problem as a message for the field ("" when the
// value is fine), for the caller to report with the field's name
// (FieldErrors). The errors every package's own wrap, ErrNotFound and
// ErrConflict, are here too: a package that checks input says with them
// why it refused it.
package input

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxSearch bounds a search parameter, in characters.
const MaxSearch = 200

// Line checks a one-line value (a name, a username, a time zone): valid
// UTF-8, no control characters at all (no line break, no tab, no NUL), and
// at most max characters.
func Line(s string, max int) string {
	if !utf8.ValidString(s) {
		return "must be valid UTF-8 text"
	}
	for _, r := range s {
		if r == '\n' || r == '\r' || r == '\u2028' || r == '\u2029' || r == '\u0085' {
			return "must be one line: no line breaks"
		}
		if isControl(r) {
			return "must not contain control characters such as NUL or tab"
		}
	}
	return length(s, max)
}

// Text checks a value that may have several lines (a description, a
// justification): valid UTF-8, no control characters but line breaks and
// tabs, and at most max characters.
func Text(s string, max int) string {
	if !utf8.ValidString(s) {
		return "must be valid UTF-8 text"
	}
	for _, r := range s {
		if r == '\n' || r == '\r' || r == '\t' {
			continue
		}
		if isControl(r) {
			return "must not contain control characters such as NUL"
		}
	}
	return length(s, max)
}

func length(s string, max int) string {
	if max > 0 && utf8.RuneCountInString(s) > max {
		return fmt.Sprintf("at most %d characters", max)
	}
	return ""
}

// isControl reports the C0 and C1 control characters and DEL, which no
// field of Provisor's takes (but for the line breaks and tabs Text allows).
func isControl(r rune) bool { return unicode.IsControl(r) }

// Clean returns s without what Line refuses (invalid UTF-8, control
// characters) and trimmed: for values that are searched for, never
// stored, such as a search box or a name to look up.
func Clean(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "")
	}
	if strings.IndexFunc(s, isControl) >= 0 {
		s = strings.Map(func(r rune) rune {
			if isControl(r) {
				return -1
			}
			return r
		}, s)
	}
	return strings.TrimSpace(s)
}

// Search is Clean cut to MaxSearch characters: a search parameter (?q=)
// longer than any name it could match finds what its first characters find.
func Search(s string) string {
	s = Clean(s)
	if utf8.RuneCountInString(s) > MaxSearch {
		s = string([]rune(s)[:MaxSearch])
	}
	return s
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// ID reports whether s is an id as Provisor makes them: a UUID in its
// canonical form (lower case, with hyphens), the only form both databases
// find alike.
func ID(s string) bool { return len(s) == 36 && uuidPattern.MatchString(s) }

// JSON checks a JSON document that is stored as it is (a connector's
// settings): valid UTF-8, no escaped NUL or lone surrogate (PostgreSQL's
// jsonb refuses them, SQLite keeps them), and no control characters in its
// strings and keys but line breaks and tabs. It returns the path of the
// offending value ("" for the document) and the problem.
func JSON(raw []byte) (path, problem string) {
	if !utf8.Valid(raw) {
		return "", "must be valid UTF-8 text"
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", "must be a JSON document"
	}
	if path, p := walk("", v); p != "" {
		return path, p
	}
	if badEscape.Match(raw) {
		// Decoded, a lone surrogate is U+FFFD, which is no problem; but
		// the document is kept as it was sent.
		return "", "must not contain NUL or a lone surrogate (\\u0000, \\ud800)"
	}
	return "", ""
}

// badEscape finds \u0000 and \uD800–\uDFFF escapes. A pair of surrogates
// also matches: no setting needs characters outside the Basic Multilingual
// Plane written as escapes, and they can be written as they are.
var badEscape = regexp.MustCompile(`(?i)\\u(0000|d[89a-f][0-9a-f]{2})`)

func walk(path string, v any) (string, string) {
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch v := v.(type) {
	case string:
		if p := Text(v, 0); p != "" {
			return path, p
		}
	case []any:
		for i, e := range v {
			if p, msg := walk(fmt.Sprintf("%s[%d]", path, i), e); msg != "" {
				return p, msg
			}
		}
	case map[string]any:
		for k, e := range v {
			if msg := Line(k, 0); msg != "" {
				return path, "key " + msg
			}
			if p, msg := walk(join(k), e); msg != "" {
				return p, msg
			}
		}
	}
	return "", ""
}
