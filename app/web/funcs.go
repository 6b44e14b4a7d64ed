package web

import (
	"crypto/rand"
	"fmt"
	"html/template"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

var funcs = template.FuncMap{
	// newKey is a fresh idempotency key for a button that starts a run:
	// the key is made when the button is rendered, so each click of it
	// sends one, and a second click before the answer sends the same.
	"newKey": func() string { return rand.Text() },
	// iso formats a time for <time datetime>, which the browser shows in
	// its own time zone.
	"iso": func(v any) string {
		if t, ok := asTime(v); ok {
			return t.UTC().Format(time.RFC3339)
		}
		return ""
	},
	// utc is the server's rendering, shown until the browser localizes it.
	"utc": func(v any) string {
		if t, ok := asTime(v); ok {
			return t.UTC().Format("2006-01-02 15:04 UTC")
		}
		return ""
	},
	"hasTime": func(v any) bool { _, ok := asTime(v); return ok },
	"title": func(s string) string {
		if s == "" {
			return s
		}
		return strings.ToUpper(s[:1]) + strings.ReplaceAll(s[1:], "_", " ")
	},
	"typeLabel": func(t any) string { return requests.Type(fmt.Sprint(t)).Label() },
	"pct": func(done, total int) int {
		if total <= 0 {
			return 0
		}
		return done * 100 / total
	},
	"add":  func(a, b int) int { return a + b },
	"sub":  func(a, b int) int { return a - b },
	"join": strings.Join,
	"dict": func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[fmt.Sprint(kv[i])] = kv[i+1]
		}
		return m
	},
	"describe": tasks.Describe,
	"contains": func(list []string, s string) bool {
		for _, v := range list {
			if v == s {
				return true
			}
		}
		return false
	},
	// withq returns a copy of the query q with key set to value (removed
	// when empty), for links that keep the current filters. The result is
	// an encoded query string: each key and value is escaped here, so the
	// template must not escape the "=" and "&" between them again.
	"withq": func(q url.Values, kv ...any) template.URL {
		out := url.Values{}
		for k, v := range q {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			k, v := fmt.Sprint(kv[i]), fmt.Sprint(kv[i+1])
			if v == "" {
				out.Del(k)
			} else {
				out.Set(k, v)
			}
		}
		return template.URL(out.Encode())
	},
	"itoa":     strconv.Itoa,
	"waitsFor": waitsFor,
	"duration": humanDuration,
	"outcomes": requests.CountOutcomes,
	// breakDots lets a narrow screen wrap a dotted name such as a job kind
	// ("Directory.CreateAccount") after its dots.
	"breakDots": func(s string) template.HTML {
		parts := strings.Split(s, ".")
		for i := range parts {
			parts[i] = template.HTMLEscapeString(parts[i])
		}
		return template.HTML(strings.Join(parts, ".<wbr>"))
	},
}

func asTime(v any) (time.Time, bool) {
	switch t := v.(type) {
	case time.Time:
		return t, !t.IsZero()
	case *time.Time:
		if t == nil || t.IsZero() {
			return time.Time{}, false
		}
		return *t, true
	}
	return time.Time{}, false
}

// humanDuration reads a duration such as "3 min" or "2 h 5 min".
func humanDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}
