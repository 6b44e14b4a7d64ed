package web

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/connectors"
)

// settingField is one setting of the connector form: its description,
// its current value as the input shows it, and its error.
type settingField struct {
	connectors.Field
	Input   string // the form field's name
	Value   string
	Checked bool
	Error   string
}

// settingsFields are the form fields of a type's settings, filled from
// the settings' JSON, with each field's errors of errs.
func settingsFields(t connectors.Type, settings string, errs map[string]string) []settingField {
	var obj map[string]any
	_ = json.Unmarshal([]byte(settings), &obj)
	out := make([]settingField, 0, len(t.Fields))
	for _, f := range t.Fields {
		sf := settingField{Field: f, Input: "setting." + f.Name}
		v, _ := lookup(obj, f.Name)
		switch f.Kind {
		case connectors.FieldBool:
			sf.Checked, _ = v.(bool)
		case connectors.FieldList:
			if list, ok := v.([]any); ok {
				var lines []string
				for _, x := range list {
					lines = append(lines, fmt.Sprint(x))
				}
				sf.Value = strings.Join(lines, "\n")
			}
		case connectors.FieldMap:
			if m, ok := v.(map[string]any); ok {
				keys := make([]string, 0, len(m))
				for k := range m {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				var lines []string
				for _, k := range keys {
					lines = append(lines, k+"="+fmt.Sprint(m[k]))
				}
				sf.Value = strings.Join(lines, "\n")
			}
		default:
			if v != nil {
				sf.Value = fmt.Sprint(v)
			}
		}
		sf.Error = fieldError(errs, "settings."+f.Name)
		out = append(out, sf)
	}
	return out
}

// fieldError joins the errors of a setting and of its parts
// ("settings.urls[0]", "settings.user_attributes.mail").
func fieldError(errs map[string]string, key string) string {
	var msgs []string
	keys := make([]string, 0, len(errs))
	for k := range errs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch {
		case k == key:
			msgs = append(msgs, errs[k])
		case strings.HasPrefix(k, key+"[") || strings.HasPrefix(k, key+"."):
			msgs = append(msgs, strings.TrimPrefix(k, "settings.")+": "+errs[k])
		}
	}
	return strings.Join(msgs, "; ")
}

// fieldKeys reports whether an error key belongs to one of the fields, so
// the JSON box lists only the others.
func fieldKeys(fields []settingField, key string) bool {
	for _, f := range fields {
		k := "settings." + f.Name
		if key == k || strings.HasPrefix(key, k+"[") || strings.HasPrefix(key, k+".") {
			return true
		}
	}
	return false
}

func lookup(obj map[string]any, path string) (any, bool) {
	parts := strings.Split(path, ".")
	var cur any = obj
	for _, p := range parts {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// set puts v at path in obj (making the objects on the way), or removes
// the setting when v is nil; an object left empty goes too.
func set(obj map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	m := obj
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			if v == nil {
				return
			}
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	last := parts[len(parts)-1]
	if v == nil {
		delete(m, last)
	} else {
		m[last] = v
	}
	if len(parts) > 1 && len(m) == 0 {
		set(obj, strings.Join(parts[:len(parts)-1], "."), nil)
	}
}

// formSettings builds the settings a connector form sends. The JSON box
// under Advanced wins when it was changed (it differs from the settings
// the page was shown with); otherwise the fields are laid over those
// settings, so a setting the form has no field for is kept. Values that
// cannot be read give errors by field.
func formSettings(c *fiber.Ctx, t connectors.Type) (string, map[string]string) {
	problems := map[string]string{}
	// Browsers send a textarea's lines with CRLF.
	raw := strings.TrimSpace(strings.ReplaceAll(form(c, "settings"), "\r\n", "\n"))
	if raw == "" {
		raw = "{}"
	}
	shown := strings.TrimSpace(strings.ReplaceAll(form(c, "settings_shown"), "\r\n", "\n"))
	if len(t.Fields) == 0 || form(c, "has_fields") != "1" || (shown != "" && raw != shown) {
		return raw, problems
	}
	base := shown
	if base == "" {
		base = raw
	}
	obj := map[string]any{}
	if err := json.Unmarshal([]byte(base), &obj); err != nil || obj == nil {
		obj = map[string]any{}
	}
	for _, f := range t.Fields {
		in := "setting." + f.Name
		v := strings.TrimSpace(form(c, in))
		switch f.Kind {
		case connectors.FieldBool:
			if form(c, in) == "on" {
				set(obj, f.Name, true)
			} else {
				set(obj, f.Name, nil)
			}
		case connectors.FieldNumber:
			if v == "" {
				set(obj, f.Name, nil)
				continue
			}
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				// Kept as typed, so the field shows it with its error.
				problems["settings."+f.Name] = "must be a number"
				set(obj, f.Name, v)
				continue
			}
			set(obj, f.Name, n)
		case connectors.FieldList:
			var list []any
			for _, line := range strings.Split(v, "\n") {
				if line = strings.TrimSpace(line); line != "" {
					list = append(list, line)
				}
			}
			if len(list) == 0 {
				set(obj, f.Name, nil)
			} else {
				set(obj, f.Name, list)
			}
		case connectors.FieldMap:
			m := map[string]any{}
			for _, line := range strings.Split(v, "\n") {
				if line = strings.TrimSpace(line); line == "" {
					continue
				}
				k, val, ok := strings.Cut(line, "=")
				if !ok || strings.TrimSpace(k) == "" {
					problems["settings."+f.Name] = fmt.Sprintf("%q is not name=value", line)
					continue
				}
				m[strings.TrimSpace(k)] = strings.TrimSpace(val)
			}
			if len(m) == 0 {
				set(obj, f.Name, nil)
			} else {
				set(obj, f.Name, m)
			}
		default:
			if v == "" {
				set(obj, f.Name, nil)
			} else {
				set(obj, f.Name, v)
			}
		}
	}
	b, err := json.MarshalIndent(obj, "", "  ")
	if err != nil {
		return raw, problems
	}
	return string(b), problems
}
