package connectors

import (
	"reflect"
	"strings"
)

// Field describes one setting of a connector type, so that the portal can
// show a form for it: a type that describes its settings gets labelled
// fields with help text and per-field errors without portal code of its
// own. Errors of ValidateSettings for the field are keyed
// "settings.<Name>" (or start with it, as "settings.urls[0]").
type Field struct {
	// Name is the setting's JSON name; a setting inside an object is
	// named with dots, as "attributes.email".
	Name  string
	Label string
	Help  string
	// Kind is how the value is entered: text, secret-free multi-line
	// textarea, list (one value a line), map (name=value a line), bool,
	// or number.
	Kind        string
	Placeholder string
	Required    bool
}

// The kinds of Field.
const (
	FieldText     = "text"
	FieldTextarea = "textarea"
	FieldList     = "list"
	FieldMap      = "map"
	FieldBool     = "bool"
	FieldNumber   = "number"
)

// FieldHelp is the text of a field derived by FieldsOf: its label (empty
// for the one derived from its name), help and placeholder.
type FieldHelp struct {
	Label, Help, Placeholder string
	Multiline, Required      bool
}

// FieldsOf derives the fields of a settings struct from its json tags, in
// the struct's order: strings are text, bools bool, numbers number, slices
// of strings list, maps of strings map, and structs their own fields
// (named with dots). help gives each field's label and help by name; a
// field without a label is labelled from its name ("user_base_dn" is
// "User base DN").
func FieldsOf(settings any, help map[string]FieldHelp) []Field {
	var out []Field
	fieldsOf(reflect.TypeOf(settings), "", help, &out)
	return out
}

func fieldsOf(t reflect.Type, prefix string, help map[string]FieldHelp, out *[]Field) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return
	}
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if !sf.IsExported() || name == "-" || name == "" {
			continue
		}
		name = prefix + name
		ft := sf.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		f := Field{Name: name}
		switch ft.Kind() {
		case reflect.String:
			f.Kind = FieldText
		case reflect.Bool:
			f.Kind = FieldBool
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint16, reflect.Uint32,
			reflect.Uint64, reflect.Float32, reflect.Float64:
			f.Kind = FieldNumber
		case reflect.Slice:
			if ft.Elem().Kind() != reflect.String {
				continue
			}
			f.Kind = FieldList
		case reflect.Map:
			if ft.Key().Kind() != reflect.String || ft.Elem().Kind() != reflect.String {
				continue
			}
			f.Kind = FieldMap
		case reflect.Struct:
			fieldsOf(ft, name+".", help, out)
			continue
		default:
			continue
		}
		h := help[name]
		f.Label, f.Help, f.Placeholder, f.Required = h.Label, h.Help, h.Placeholder, h.Required
		if h.Multiline && f.Kind == FieldText {
			f.Kind = FieldTextarea
		}
		if f.Label == "" {
			f.Label = labelOf(name)
		}
		*out = append(*out, f)
	}
}

// labelWords are written so in labels.
var labelWords = map[string]string{"dn": "DN", "url": "URL", "urls": "URLs", "tls": "TLS", "ca": "CA", "upn": "UPN", "id": "ID",
	"ldap": "LDAP", "api": "API", "scim": "SCIM"}

// labelOf reads a setting's name as a label: "attributes.user_base_dn" is
// "User base DN".
func labelOf(name string) string {
	if i := strings.LastIndex(name, "."); i >= 0 {
		name = name[i+1:]
	}
	words := strings.Split(name, "_")
	for i, w := range words {
		if l, ok := labelWords[w]; ok {
			words[i] = l
		} else if i == 0 && w != "" {
			words[i] = strings.ToUpper(w[:1]) + w[1:]
		}
	}
	return strings.Join(words, " ")
}
