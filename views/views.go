// Package views holds Provisor's embedded templates and static assets: the
// portal's pages and htmx fragments (web/), the completion emails
// (email/), and the files served under /static (static/). Templates are
// html/template or text/template sources; nothing here imports the rest of
// the project.
package views

import (
	"embed"
	"io/fs"
)

//go:embed all:web all:email all:static
var files embed.FS

// Web returns the portal's page templates.
func Web() fs.FS { return sub("web") }

// Email returns the email templates.
func Email() fs.FS { return sub("email") }

// Static returns the files served under /static.
func Static() fs.FS { return sub("static") }

func sub(dir string) fs.FS {
	f, err := fs.Sub(files, dir)
	if err != nil {
		panic(err) // the folders are embedded above; this cannot fail
	}
	return f
}
