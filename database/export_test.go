package database

import "log/slog"

// Lenient turns the transaction check of db to what a server runs with,
// reporting to log.
func Lenient(db *DB, log *slog.Logger) { db.guard.strict, db.guard.log = false, log }
