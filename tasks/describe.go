package tasks

import (
	"fmt"
	"strconv"
	"strings"
)

var (
	monthNames = []string{"", "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"}
	dayNames   = []string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}
	monthAbbr  = map[string]string{"jan": "1", "feb": "2", "mar": "3", "apr": "4", "may": "5", "jun": "6", "jul": "7", "aug": "8", "sep": "9", "oct": "10", "nov": "11", "dec": "12"}
	dayAbbr    = map[string]string{"sun": "0", "mon": "1", "tue": "2", "wed": "3", "thu": "4", "fri": "5", "sat": "6"}
)

// Describe reads a valid schedule in plain language, such as "At 22:00,
// Monday to Friday (Europe/Paris)". It returns "" for an invalid one.
func Describe(expr, tz string) string {
	if _, _, err := ParseSchedule(expr, tz); err != nil {
		return ""
	}
	expr = strings.TrimSpace(expr)
	var out string
	switch strings.ToLower(expr) {
	case "@yearly", "@annually":
		out = "At 00:00 on 1 January"
	case "@monthly":
		out = "At 00:00 on day 1 of every month"
	case "@weekly":
		out = "At 00:00, every Sunday"
	case "@daily", "@midnight":
		out = "At 00:00, every day"
	case "@hourly":
		out = "At minute 0 of every hour"
	default:
		f := strings.Fields(expr)
		out = describeTime(f[0], f[1]) + describeDays(f[2], f[4]) + describeMonths(f[3])
	}
	return out + " (" + tz + ")"
}

func single(f string) (int, bool) {
	n, err := strconv.Atoi(f)
	return n, err == nil
}

func describeTime(min, hour string) string {
	m, mOK := single(min)
	h, hOK := single(hour)
	switch {
	case mOK && hOK:
		return fmt.Sprintf("At %02d:%02d", h, m)
	case min == "*" && hour == "*":
		return "Every minute"
	case strings.HasPrefix(min, "*/") && hour == "*":
		return "Every " + strings.TrimPrefix(min, "*/") + " minutes"
	case mOK && hour == "*":
		return fmt.Sprintf("At minute %d of every hour", m)
	case strings.HasPrefix(hour, "*/") && mOK:
		return fmt.Sprintf("At minute %d of every %s hours", m, strings.TrimPrefix(hour, "*/"))
	case mOK:
		return fmt.Sprintf("At minute %d past hour %s", m, list(hour, nil))
	case hour == "*":
		return "At minutes " + list(min, nil) + " of every hour"
	}
	return "At minutes " + list(min, nil) + " past hour " + list(hour, nil)
}

func describeDays(dom, dow string) string {
	switch {
	case dom == "*" && dow == "*":
		return ", every day"
	case dom == "*":
		return ", " + list(dow, func(s string) string {
			if v, ok := dayAbbr[strings.ToLower(s)]; ok {
				s = v
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 || n > 7 {
				return s
			}
			return dayNames[n]
		})
	case dow == "*":
		return ", on day " + list(dom, nil) + " of the month"
	}
	return ", on day " + list(dom, nil) + " of the month and on " + list(dow, func(s string) string {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 && n <= 7 {
			return dayNames[n]
		}
		return s
	})
}

func describeMonths(mon string) string {
	if mon == "*" {
		return ""
	}
	return ", in " + list(mon, func(s string) string {
		if v, ok := monthAbbr[strings.ToLower(s)]; ok {
			s = v
		}
		if n, err := strconv.Atoi(s); err == nil && n >= 1 && n <= 12 {
			return monthNames[n]
		}
		return s
	})
}

// list reads a cron field: "1,3", "1-5", "*/2", with names made by name.
func list(field string, name func(string) string) string {
	if name == nil {
		name = func(s string) string { return s }
	}
	var parts []string
	for _, p := range strings.Split(field, ",") {
		step := ""
		if base, s, ok := strings.Cut(p, "/"); ok {
			p, step = base, s
		}
		var text string
		switch {
		case p == "*":
			text = "every"
		case strings.Contains(p, "-"):
			a, b, _ := strings.Cut(p, "-")
			text = name(a) + " to " + name(b)
		default:
			text = name(p)
		}
		if step != "" {
			if text == "every" {
				text = "every " + step + "th"
			} else {
				text += " every " + step
			}
		}
		parts = append(parts, text)
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}
