package provlog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/input"
)

// Log is the provisioning log of one database.
type Log struct {
	db    *gorm.DB
	store *database.DB
	busy  func() bool
}

// Options tune a Log. A nil *Options means defaults.
type Options struct {
	// BusyFunc reports whether the process is running connector jobs:
	// the expander then gives way to them (see ExpandBy). Nil: never busy.
	BusyFunc func() bool
}

// New returns the log stored in db.
func New(db *database.DB, opts *Options) *Log {
	l := &Log{db: db.Gorm, store: db, busy: func() bool { return false }}
	if opts != nil && opts.BusyFunc != nil {
		l.busy = opts.BusyFunc
	}
	return l
}

// InsertTx writes entries in tx: as one row of provisioning_log_pending,
// the entries as one JSON array (see migration 022). Expand moves them
// into provisioning_logs later; every read of the log does it first.
func InsertTx(tx *gorm.DB, entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	for i := range entries {
		entries[i].Prepare()
	}
	layout := sqliteTime
	if tx.Dialector.Name() == database.Postgres {
		layout = time.RFC3339Nano
	}
	b, err := rowsJSON(entries, layout)
	if err == nil {
		err = tx.Exec("INSERT INTO provisioning_log_pending (at, entries) VALUES (?, ?)", time.Now().UTC(), b).Error
	}
	if err != nil {
		return fmt.Errorf("provlog: write %d entries: %w", len(entries), err)
	}
	return nil
}

// insertColumns are the columns of an entry in provisioning_log_pending's
// arrays, in the order of rowsJSON.
var insertColumns = []string{"id", "at", "duration_ms", "connector_id", "connector_name", "connector_type", "action",
	"operation", "kind", "identity_id", "identity_name", "identity_email", "target_username", "target_external_id",
	"entitlement_name", "entitlement_external_id", "initiated_by", "trigger", "instance_id", "task_id", "task_name",
	"job_id", "job_seq", "attempt", "status", "error_class", "error_code", "error_message", "request_id", "message",
	"steps", "changes", "search"}

// columnTypes are the PostgreSQL types of insertColumns.
var columnTypes = []string{"uuid", "timestamptz", "bigint", "uuid", "text", "text", "text", "text", "text", "uuid", "text",
	"text", "text", "text", "text", "text", "text", "text", "uuid", "uuid", "text", "uuid", "integer", "integer", "text",
	"text", "text", "text", "text", "text", "text", "text", "text"}

// expandSelect is the INSERT of provisioning_logs from the entries of
// pending rows found in from: column is how one column is read out of an
// entry's array, with %d for its position and %t for its PostgreSQL type.
func expandSelect(column, from string) string {
	if len(columnTypes) != len(insertColumns) {
		panic("provlog: a column of the insert has no type")
	}
	var b strings.Builder
	b.WriteString("INSERT INTO provisioning_logs (" + strings.Join(insertColumns, ", ") + ") SELECT ")
	for i := range insertColumns {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strings.NewReplacer("%d", strconv.Itoa(i), "%t", columnTypes[i]).Replace(column))
	}
	b.WriteString(" FROM " + from)
	return b.String()
}

// sqliteTime is how the SQLite driver writes a time, the form every
// query on SQLite compares with.
const sqliteTime = "2006-01-02 15:04:05.999999999-07:00"

// rowsJSON is entries as a JSON array of arrays in the order of
// insertColumns, times in the layout the database reads.
func rowsJSON(entries []Entry, timeLayout string) (string, error) {
	rows := make([][]any, len(entries))
	for i := range entries {
		e := &entries[i]
		rows[i] = []any{e.ID, e.At.UTC().Format(timeLayout), e.DurationMS, e.ConnectorID, e.ConnectorName,
			e.ConnectorType, e.Action, e.Operation, e.Kind, e.IdentityID, e.IdentityName, e.IdentityEmail,
			e.TargetUsername, e.TargetExternalID, e.EntitlementName, e.EntitlementExternalID, e.InitiatedBy, e.Trigger,
			e.InstanceID, e.TaskID, e.TaskName, e.JobID, e.JobSeq, e.Attempt, e.Status, e.ErrorClass, e.ErrorCode,
			e.ErrorMessage, e.RequestID, e.Message, e.StepsJSON, e.ChangesJSON, e.Search}
	}
	b, err := json.Marshal(rows)
	return string(b), err
}

// Filter selects entries. Zero fields select all.
type Filter struct {
	// Query matches any identifier of the source or the target (name,
	// email, username, UPN, DN, external id, group), case-insensitive, in
	// part.
	Query       string
	ConnectorID string
	IdentityID  string
	InstanceID  string
	Action      string
	Status      string
	ErrorClass  string
	Since       time.Time // inclusive
	Until       time.Time // exclusive
	// Before is the cursor of a page: the entries older than it.
	Before Cursor
	Limit  int
}

// Cursor is the position of an entry in the log, newest first.
type Cursor struct {
	At time.Time
	ID string
}

// IsZero reports whether c is no position (the newest entries).
func (c Cursor) IsZero() bool { return c.ID == "" }

// String is the cursor as a page link carries it.
func (c Cursor) String() string {
	if c.IsZero() {
		return ""
	}
	return c.At.UTC().Format(time.RFC3339Nano) + "_" + c.ID
}

// ParseCursor reads a cursor of String; "" is the zero cursor.
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	at, id, ok := strings.Cut(s, "_")
	t, err := time.Parse(time.RFC3339Nano, at)
	if !ok || err != nil || len(id) != 36 {
		return Cursor{}, errors.New("not a page of the log")
	}
	return Cursor{At: t, ID: id}, nil
}

// escapeLike escapes the wildcards of LIKE in s.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// searchWhere selects the entries with an identifier that contains t
// (lowercase). On SQLite the full-text table of trigrams answers (migration
// 021): it takes a LIKE without ESCAPE and of three characters or more, so
// a shorter term or one with a wildcard character reads the column itself.
// PostgreSQL answers from the trigram index on search. Both are given the
// rarest word of the term (indexWord).
func searchWhere(q *gorm.DB, t string) *gorm.DB {
	if q.Dialector.Name() != database.Postgres {
		if utf8.RuneCountInString(t) < 3 || strings.ContainsAny(t, `%_\`) {
			return q.Where(`search LIKE ? ESCAPE '\'`, "%"+escapeLike(t)+"%")
		}
		// The full-text index has the trigram GIN index's weakness and gets
		// the same help.
		w := indexWord(q, t)
		q = q.Where(`rowid IN (SELECT rowid FROM provisioning_logs_search WHERE search LIKE ?)`, "%"+w+"%")
		if w != t {
			q = q.Where("instr(search, ?) > 0", t)
		}
		return q
	}
	if w := indexWord(q, t); w != t {
		// The index finds the entries with the rarest word; each of them
		// is then checked for the whole term.
		return q.Where(`search LIKE ? ESCAPE '\'`, "%"+escapeLike(w)+"%").Where("strpos(search, ?) > 0", t)
	}
	return q.Where(`search LIKE ? ESCAPE '\'`, "%"+escapeLike(t)+"%")
}

// words splits t into its runs of letters and its runs of digits:
// "user4567, ou=people" gives user, 4567, ou and people.
func words(t string) []string {
	var out []string
	start, kind := -1, 0
	for i, r := range t {
		k := 0
		switch {
		case unicode.IsLetter(r):
			k = 1
		case unicode.IsDigit(r):
			k = 2
		}
		if k != kind && start >= 0 {
			out = append(out, t[start:i])
			start = -1
		}
		if k != 0 && start < 0 {
			start = i
		}
		kind = k
	}
	if start >= 0 {
		out = append(out, t[start:])
	}
	return out
}

// sampleSize is how many of the newest entries indexWord counts the words
// in: they are the pages most likely in memory, and they tell which words
// are common now.
const sampleSize = 2000

// indexWord is the part of a term of several words that the trigram index
// should look up: the word found in the fewest of the newest entries (the
// longest among equals), or t itself. A GIN index reads
// the whole list of entries of every trigram it is given, and a word that
// most entries have ("person" in "person 4567", "people" in a DN) costs
// the reading of most of the table's entries for nothing: the index then
// took half a second on 10,000,000 entries, against tens of milliseconds
// for the rare word alone.
func indexWord(q *gorm.DB, t string) string {
	var cands []string
	for _, w := range words(t) {
		if utf8.RuneCountInString(w) >= 3 && !slices.Contains(cands, w) {
			cands = append(cands, w)
		}
	}
	if len(cands) < 2 {
		return t
	}
	var sel strings.Builder
	args := make([]any, len(cands))
	for i, w := range cands {
		if i > 0 {
			sel.WriteString(", ")
		}
		fmt.Fprintf(&sel, `count(*) FILTER (WHERE search LIKE ? ESCAPE '\') AS n%d`, i)
		args[i] = "%" + escapeLike(w) + "%"
	}
	var counts map[string]any
	err := q.Session(&gorm.Session{NewDB: true}).Raw(fmt.Sprintf("SELECT %s FROM (SELECT search FROM provisioning_logs "+
		"ORDER BY at DESC, id DESC LIMIT %d) s", sel.String(), sampleSize), args...).Scan(&counts).Error
	best, bestN := t, int64(-1)
	for i, w := range cands {
		var n int64
		if err == nil {
			n, _ = counts[fmt.Sprintf("n%d", i)].(int64)
		}
		if bestN < 0 || n < bestN || (n == bestN && utf8.RuneCountInString(w) > utf8.RuneCountInString(best)) {
			best, bestN = w, n
		}
	}
	return best
}

func (f *Filter) apply(q *gorm.DB) *gorm.DB {
	if t := strings.ToLower(strings.TrimSpace(input.Search(f.Query))); t != "" {
		q = searchWhere(q, t)
	}
	if f.ConnectorID != "" {
		q = q.Where("connector_id = ?", f.ConnectorID)
	}
	if f.IdentityID != "" {
		q = q.Where("identity_id = ?", f.IdentityID)
	}
	if f.InstanceID != "" {
		q = q.Where("instance_id = ?", f.InstanceID)
	}
	if f.Action != "" {
		q = q.Where("action = ?", f.Action)
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.ErrorClass != "" {
		q = q.Where("error_class = ?", f.ErrorClass)
	}
	if !f.Since.IsZero() {
		q = q.Where("at >= ?", f.Since.UTC())
	}
	if !f.Until.IsZero() {
		q = q.Where("at < ?", f.Until.UTC())
	}
	if !f.Before.IsZero() {
		q = q.Where("(at < ? OR (at = ? AND id < ?))", f.Before.At.UTC(), f.Before.At.UTC(), f.Before.ID)
	}
	return q.Order("at DESC, id DESC")
}

// Validate checks the filter's choices.
func (f *Filter) Validate() error {
	if f.Action != "" && !oneOf(f.Action, Actions) {
		return fmt.Errorf("action %q is not one of %s", f.Action, strings.Join(Actions, ", "))
	}
	if f.Status != "" && !oneOf(f.Status, Statuses) {
		return fmt.Errorf("status %q is not one of %s", f.Status, strings.Join(Statuses, ", "))
	}
	if f.ErrorClass != "" && !oneOf(f.ErrorClass, Classes) {
		return fmt.Errorf("error class %q is not one of %s", f.ErrorClass, strings.Join(Classes, ", "))
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return errors.New("the end of the time range must be after its start")
	}
	return nil
}

func oneOf(s string, list []string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// DefaultLimit and MaxLimit bound a page of Search.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// Search returns a page of the entries f selects, newest first, and the
// cursor of the next page (zero at the end).
func (l *Log) Search(ctx context.Context, f Filter) ([]Entry, Cursor, error) {
	if err := f.Validate(); err != nil {
		return nil, Cursor{}, err
	}
	if err := l.flush(ctx); err != nil {
		return nil, Cursor{}, err
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	var out []Entry
	if err := f.apply(l.db.WithContext(ctx).Model(&Entry{})).Omit("search").Limit(limit + 1).Find(&out).Error; err != nil {
		return nil, Cursor{}, fmt.Errorf("provlog: search: %w", err)
	}
	var next Cursor
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = Cursor{At: last.At, ID: last.ID}
	}
	for i := range out {
		out[i].decode()
	}
	return out, next, nil
}

// Get returns the entry of id.
func (l *Log) Get(ctx context.Context, id string) (*Entry, error) {
	if err := l.flush(ctx); err != nil {
		return nil, err
	}
	var e Entry
	if err := l.db.WithContext(ctx).Where("id = ?", id).Take(&e).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("provlog: get %s: %w", id, err)
	}
	e.decode()
	return &e, nil
}

// ErrNotFound is returned for an entry that does not exist.
var ErrNotFound = fmt.Errorf("provlog: entry %w", input.ErrNotFound)

// Stream calls fn with each entry f selects, newest first, reading them
// from the database as fn goes (f.Limit and f.Before apply): the whole
// set is never in memory. The Entry given to fn is reused.
func (l *Log) Stream(ctx context.Context, f Filter, fn func(*Entry) error) error {
	if err := f.Validate(); err != nil {
		return err
	}
	if err := l.flush(ctx); err != nil {
		return err
	}
	q := f.apply(l.db.WithContext(ctx).Model(&Entry{})).Select(streamColumns)
	if f.Limit > 0 {
		q = q.Limit(f.Limit)
	}
	rows, err := q.Rows()
	if err != nil {
		return fmt.Errorf("provlog: export: %w", err)
	}
	defer rows.Close()
	var e Entry
	var connectorID, identityID, instanceID, taskID, jobID sql.NullString
	for rows.Next() {
		e = Entry{}
		if err := rows.Scan(&e.ID, &e.At, &e.DurationMS, &connectorID, &e.ConnectorName, &e.ConnectorType, &e.Action,
			&e.Operation, &e.Kind, &identityID, &e.IdentityName, &e.IdentityEmail, &e.TargetUsername, &e.TargetExternalID,
			&e.EntitlementName, &e.EntitlementExternalID, &e.InitiatedBy, &e.Trigger, &instanceID, &taskID, &e.TaskName,
			&jobID, &e.JobSeq, &e.Attempt, &e.Status, &e.ErrorClass, &e.ErrorCode, &e.ErrorMessage, &e.RequestID,
			&e.Message, &e.StepsJSON, &e.ChangesJSON); err != nil {
			return fmt.Errorf("provlog: export: %w", err)
		}
		e.ConnectorID, e.IdentityID, e.InstanceID = ptr(connectorID), ptr(identityID), ptr(instanceID)
		e.TaskID, e.JobID = ptr(taskID), ptr(jobID)
		e.Recommendation = Recommend(e.ErrorClass, e.ErrorCode, e.ErrorMessage)
		if err := fn(&e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// streamColumns are the columns Stream scans, in its order.
const streamColumns = "id, at, duration_ms, connector_id, connector_name, connector_type, action, operation, kind, " +
	"identity_id, identity_name, identity_email, target_username, target_external_id, entitlement_name, " +
	"entitlement_external_id, initiated_by, trigger, instance_id, task_id, task_name, job_id, job_seq, attempt, " +
	"status, error_class, error_code, error_message, request_id, message, steps, changes"

func ptr(s sql.NullString) *string {
	if !s.Valid {
		return nil
	}
	v := s.String
	return &v
}

// PruneBatch is how many entries one statement of Prune deletes: small
// enough that a delete never holds the table long.
const PruneBatch = 1000

// Prune deletes the entries older than before, PruneBatch at a time, each
// batch in its own statement, and returns how many it deleted.
func (l *Log) Prune(ctx context.Context, before time.Time) (int64, error) {
	// Entries still pending that old go into the log first, to be
	// deleted with the others. The newer ones are left to the expander:
	// the prune runs when a process starts, perhaps in the middle of a
	// burst.
	if _, err := l.expand(ctx, before, expandWait); err != nil {
		return 0, err
	}
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		res := l.db.WithContext(ctx).Exec(`DELETE FROM provisioning_logs WHERE id IN
			(SELECT id FROM provisioning_logs WHERE at < ? ORDER BY at LIMIT ?)`, before.UTC(), PruneBatch)
		if res.Error != nil {
			return total, fmt.Errorf("provlog: prune: %w", res.Error)
		}
		total += res.RowsAffected
		if res.RowsAffected < PruneBatch {
			return total, nil
		}
	}
}
