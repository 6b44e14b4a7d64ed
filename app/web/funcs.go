package web

import (
	"crypto/rand"
	"fmt"
	"html/template"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/provisor/provisor/identities"
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
	// inZone is the server's rendering of a time in a named zone.
	"inZone": func(v any, tz string) string {
		t, ok := asTime(v)
		if !ok {
			return ""
		}
		loc, err := time.LoadLocation(tz)
		if err != nil || tz == "" {
			return t.UTC().Format("2006-01-02 15:04 UTC")
		}
		return t.In(loc).Format("2006-01-02 15:04 ") + tz
	},
	"title": title,
	"deref": func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	},
	"logStatus": func(s string) string {
		if s == "no_change" {
			return "No change"
		}
		return title(s)
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
	"itoa":      strconv.Itoa,
	"bar":       progressBar,
	"problems":  problemList,
	"fieldKey":  fieldKeys,
	"plural":    plural,
	"waitsFor":  waitsFor,
	"duration":  humanDuration,
	"outcomes":  requests.CountOutcomes,
	"kindLabel": identities.KindLabel,
	// rateWaits sums the rate-limit waits of a run's jobs.
	"rateWaits": func(jobs []requests.Job) int {
		n := 0
		for _, j := range jobs {
			n += j.RateLimitWaits
		}
		return n
	},
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

// barPart is one coloured part of a run's progress bar.
type barPart struct {
	Status string
	N      int
	X, W   float64
}

// progressBar splits a run's jobs into completed, failed, canceled and
// still-to-run parts (running, scheduled, pending), in that order, each as
// a share of 100. Jobs not counted by status yet are pending.
func progressBar(v any) []barPart {
	var inst *requests.Instance
	switch i := v.(type) {
	case requests.Instance:
		inst = &i
	case *requests.Instance:
		inst = i
	}
	if inst == nil || inst.JobsTotal <= 0 {
		return nil
	}
	rest := inst.JobsTotal - inst.JobsCompleted - inst.JobsFailed - inst.JobsCanceled - inst.JobsRunning - inst.JobsScheduled
	var out []barPart
	x := 0.0
	for _, p := range []barPart{{Status: "completed", N: inst.JobsCompleted}, {Status: "failed", N: inst.JobsFailed},
		{Status: "canceled", N: inst.JobsCanceled}, {Status: "running", N: inst.JobsRunning},
		{Status: "scheduled", N: inst.JobsScheduled}, {Status: "pending", N: max(rest, 0)}} {
		if p.N <= 0 {
			continue
		}
		p.X, p.W = x, float64(p.N)*100/float64(inst.JobsTotal)
		x += p.W
		out = append(out, p)
	}
	return out
}

// plural says "1 run", "2 runs": n and the noun, with an s unless n is 1
// (or the plural form given, as in plural n "entry" "entries").
func plural(n any, noun string, many ...string) string {
	v := fmt.Sprint(n)
	if v == "1" {
		return "1 " + noun
	}
	if len(many) > 0 {
		return v + " " + many[0]
	}
	return v + " " + noun + "s"
}

// acronyms are words title writes in capitals.
var acronyms = map[string]string{"api": "API", "cli": "CLI", "ldap": "LDAP", "ad": "AD", "scim": "SCIM", "smtp": "SMTP"}

// title reads a status or a name such as awaiting_approval as a label:
// "Awaiting approval"; "api" is "API".
func title(s string) string {
	if s == "" {
		return s
	}
	if a, ok := acronyms[s]; ok {
		return a
	}
	return strings.ToUpper(s[:1]) + strings.ReplaceAll(s[1:], "_", " ")
}
