package provlog

import (
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// QueryParams are the names of the query parameters ParseQuery reads.
var QueryParams = []string{"q", "connector_id", "identity_id", "instance_id", "action", "status", "error_class", "since", "until", "before", "limit"}

// ParseQuery reads a Filter from query parameters (get returns a
// parameter's value, "" when absent): q, connector_id, identity_id,
// instance_id, action, status, error_class, since and until (RFC 3339,
// unless parseTime reads them otherwise), before (a page's cursor) and
// limit. It returns the problems by parameter.
func ParseQuery(get func(string) string, parseTime func(string) (time.Time, error)) (Filter, map[string]string) {
	if parseTime == nil {
		parseTime = func(s string) (time.Time, error) { return time.Parse(time.RFC3339, s) }
	}
	errs := map[string]string{}
	f := Filter{Query: strings.TrimSpace(get("q")), Action: get("action"), Status: get("status"), ErrorClass: get("error_class")}
	if len(f.Query) > 200 {
		errs["q"] = "must be at most 200 characters"
	}
	for name, dst := range map[string]*string{"connector_id": &f.ConnectorID, "identity_id": &f.IdentityID, "instance_id": &f.InstanceID} {
		if v := get(name); v != "" {
			if _, err := uuid.Parse(v); err != nil || len(v) != 36 {
				errs[name] = "must be an id (UUID)"
			} else {
				*dst = strings.ToLower(v)
			}
		}
	}
	if f.Action != "" && !oneOf(f.Action, Actions) {
		errs["action"] = "must be one of " + strings.Join(Actions, ", ")
	}
	if f.Status != "" && !oneOf(f.Status, Statuses) {
		errs["status"] = "must be one of " + strings.Join(Statuses, ", ")
	}
	if f.ErrorClass != "" && !oneOf(f.ErrorClass, Classes) {
		errs["error_class"] = "must be one of " + strings.Join(Classes, ", ")
	}
	for name, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := get(name); v != "" {
			t, err := parseTime(v)
			if err != nil {
				errs[name] = "must be a time, such as 2025-01-31T08:00:00Z"
			} else {
				*dst = t
			}
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		errs["until"] = "must be after since"
	}
	c, err := ParseCursor(get("before"))
	if err != nil {
		errs["before"] = err.Error()
	}
	f.Before = c
	if v := get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit {
			errs["limit"] = "must be a number from 1 to " + strconv.Itoa(MaxLimit)
		}
		f.Limit = n
	}
	return f, errs
}
