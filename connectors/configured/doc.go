// Package configured keeps the connectors an administrator configured: their
// records (name, type, settings, sealed secrets, health, import cookie) in
// the database, validation of a change against the type's rules, and the
// live connector built from a record, reused until the record changes.
//
// It is the one part of the connector layer that talks to the database, so
// the connector types themselves stay free of it.
package configured
