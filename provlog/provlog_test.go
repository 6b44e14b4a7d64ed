package provlog_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/provlog"
)

func open(t testing.TB, dialect string) (*database.DB, *provlog.Log) {
	t.Helper()
	db := dbtest.Open(t, dialect)
	return db, provlog.New(db, nil)
}

func entry(at time.Time, name, email, username, dn string) provlog.Entry {
	conn, id := uuid.NewString(), uuid.NewString()
	return provlog.Entry{ID: uuid.NewString(), At: at, ConnectorID: &conn, ConnectorName: "Corp LDAP", ConnectorType: "ldap",
		Action: provlog.ActionGrant, IdentityID: &id, IdentityName: name, IdentityEmail: email, TargetUsername: username,
		TargetExternalID: dn, EntitlementName: "VPN Users", EntitlementExternalID: "cn=vpn,ou=groups,dc=example,dc=test",
		Status: provlog.StatusSuccess, InitiatedBy: "admin", Trigger: "manual", Message: "done",
		Steps: []connectors.Step{{Name: "modify", Duration: time.Millisecond}}}
}

func insert(t *testing.T, db *database.DB, es []provlog.Entry) {
	t.Helper()
	if err := db.InTx(context.Background(), func(tx *gorm.DB) error { return provlog.InsertTx(tx, es) }); err != nil {
		t.Fatal(err)
	}
}

// A search finds an entry by any identifier of its source or target, in
// part and in any case, and the filters and the pages combine with it.
func TestSearchByEveryIdentifierInAnyCase(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		db, l := open(t, dialect)
		now := time.Now().UTC().Truncate(time.Millisecond)
		ada := entry(now, "Ada Lovelace", "Ada.Lovelace@Example.test", "alovelace", "uid=alovelace,ou=People,dc=example,dc=test")
		ada.Status, ada.ErrorClass, ada.ErrorCode = provlog.StatusFailure, provlog.ClassAuthorization, "LDAP 50"
		other := entry(now.Add(-time.Minute), "Grace Hopper", "grace@example.test", "ghopper", "uid=ghopper,ou=People,dc=example,dc=test")
		other.Action = provlog.ActionCreate
		insert(t, db, []provlog.Entry{ada, other})
		for _, q := range []string{"ada lovelace", "LOVELACE", "ada.lovelace@example.TEST", "ALoveLace", "UID=ALOVELACE,OU=PEOPLE",
			"OU=PEOPLE,DC=EXAMPLE,DC=TEST"} {
			got, _, err := l.Search(context.Background(), provlog.Filter{Query: q})
			if err != nil {
				t.Fatal(err)
			}
			want := 1
			if strings.HasPrefix(q, "OU=") {
				want = 2
			}
			if len(got) != want || got[0].ID != ada.ID {
				t.Errorf("search %q: %d entries", q, len(got))
			}
		}
		// Wildcards are taken as they are written.
		if got, _, _ := l.Search(context.Background(), provlog.Filter{Query: "%"}); len(got) != 0 {
			t.Errorf("search %%: %d entries", len(got))
		}
		for _, f := range []provlog.Filter{{Status: provlog.StatusFailure}, {ErrorClass: provlog.ClassAuthorization},
			{Action: provlog.ActionGrant}, {ConnectorID: *ada.ConnectorID}, {IdentityID: *ada.IdentityID},
			{Since: now.Add(-time.Second)}, {Query: "example.test", Until: now.Add(time.Millisecond), Since: now}} {
			got, _, err := l.Search(context.Background(), f)
			if err != nil || len(got) != 1 || got[0].ID != ada.ID {
				t.Errorf("filter %+v: %d entries, %v", f, len(got), err)
			}
		}
		got, next, err := l.Search(context.Background(), provlog.Filter{Limit: 1})
		if err != nil || len(got) != 1 || got[0].ID != ada.ID || next.IsZero() {
			t.Fatalf("first page %v %v %v", got, next, err)
		}
		c, err := provlog.ParseCursor(next.String())
		if err != nil {
			t.Fatal(err)
		}
		got, next, err = l.Search(context.Background(), provlog.Filter{Limit: 1, Before: c})
		if err != nil || len(got) != 1 || got[0].ID != other.ID || !next.IsZero() {
			t.Fatalf("second page %v %v %v", got, next, err)
		}
		e, err := l.Get(context.Background(), ada.ID)
		if err != nil || e.Recommendation == "" || len(e.Steps) != 1 {
			t.Errorf("get: %+v %v", e, err)
		}
	})
}

// Terms too short for the trigram index, terms with LIKE's wildcard
// characters, letters outside ASCII in any case, and terms of several words
// (each found, but only the whole term selects) find what they name.
func TestSearchShortTermsWildcardsAndAccents(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		db, l := open(t, dialect)
		now := time.Now().UTC()
		insert(t, db, []provlog.Entry{
			entry(now, "Zoë Ångström", "zoe@example.test", "zangstrom", "uid=zangstrom,ou=people,dc=example,dc=test"),
			entry(now.Add(-time.Second), "Bo Li", "bo_li@example.test", "bo_li", "uid=bo_li,ou=people,dc=example,dc=test"),
			entry(now.Add(-2*time.Second), "Boa Lix", "boalix@example.test", "boalix", "uid=boalix,ou=people,dc=example,dc=test"),
		})
		for q, want := range map[string][]string{
			"ÅNGSTRÖM": {"zangstrom"}, "zoË": {"zangstrom"}, "BO": {"bo_li", "boalix"}, "o_l": {"bo_li"},
			"BO_LI@": {"bo_li"}, "o%l": {}, "Ë": {"zangstrom"}, "Lix": {"boalix"},
			// Each word is found, but not the whole term.
			"BOA LIX": {"boalix"}, "lix boa": {}, "zangstrom,ou=people": {"zangstrom"}, "people,ou=zangstrom": {},
		} {
			got, _, err := l.Search(context.Background(), provlog.Filter{Query: q})
			if err != nil {
				t.Fatalf("search %q: %v", q, err)
			}
			var names []string
			for _, e := range got {
				names = append(names, e.TargetUsername)
			}
			if fmt.Sprint(names) != fmt.Sprint(want) {
				t.Errorf("search %q: %v, want %v", q, names, want)
			}
		}
	})
}

// Cells that a spreadsheet would read as a formula are neutralised; JSON
// is a valid array of the entries.
func TestDownloadsNeutraliseFormulas(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		db, l := open(t, dialect)
		e := entry(time.Now().UTC(), "=HYPERLINK(\"http://evil\")", "@evil.test", "+cmd", "-2+3")
		e.Message = "\tTAB"
		insert(t, db, []provlog.Entry{e, entry(time.Now().UTC().Add(-time.Second), "Plain Name", "p@example.test", "plain", "uid=plain")})
		var b bytes.Buffer
		if err := l.WriteCSV(context.Background(), &b, provlog.Filter{}); err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(&b).ReadAll()
		if err != nil || len(rows) != 3 {
			t.Fatalf("%d rows, %v", len(rows), err)
		}
		for _, row := range rows[1:] {
			for i, cell := range row {
				if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
					t.Errorf("column %s cell %q is read as a formula", rows[0][i], cell)
				}
			}
		}
		if rows[1][7] != `'=HYPERLINK("http://evil")` || rows[2][7] != "Plain Name" {
			t.Errorf("cells %q %q", rows[1][7], rows[2][7])
		}
		b.Reset()
		if err := l.WriteJSON(context.Background(), &b, provlog.Filter{Query: "plain"}); err != nil {
			t.Fatal(err)
		}
		var got []provlog.Entry
		if err := json.Unmarshal(b.Bytes(), &got); err != nil || len(got) != 1 || got[0].TargetUsername != "plain" || len(got[0].Steps) != 1 {
			t.Fatalf("json %s: %v", b.String(), err)
		}
	})
}

// A download of 100,000 entries streams them: the heap does not grow with
// the rows written.
func TestDownloadStreamsWithoutHoldingTheEntries(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		db, l := open(t, dialect)
		const n = 100_000
		start := time.Now().UTC()
		for i := 0; i < n; i += 5000 {
			es := make([]provlog.Entry, 5000)
			for k := range es {
				m := i + k
				es[k] = entry(start.Add(-time.Duration(m)*time.Millisecond), fmt.Sprintf("Person %d", m), fmt.Sprintf("p%d@example.test", m),
					fmt.Sprintf("user%d", m), fmt.Sprintf("uid=user%d,ou=people,dc=example,dc=test", m))
			}
			insert(t, db, es)
		}
		w := &heapWatch{every: 20_000}
		runtime.GC()
		w.base = heap()
		if err := l.WriteCSV(context.Background(), w, provlog.Filter{}); err != nil {
			t.Fatal(err)
		}
		// 100,000 entries of about 600 bytes each held would be 60 MB. The
		// heap may also end smaller than it began (a collection ran).
		w.peak = max(w.peak, w.base)
		if w.lines < n || w.peak-w.base > 16<<20 {
			t.Errorf("%d lines; heap grew by %d MB while streaming", w.lines, (w.peak-w.base)>>20)
		}
		t.Logf("%s: %d lines, heap grew by at most %d KB", dialect, w.lines, (w.peak-w.base)>>10)
	})
}

// heapWatch counts the lines written to it and samples the live heap every
// so many lines.
type heapWatch struct {
	every, lines, next int
	base, peak         uint64
}

func (w *heapWatch) Write(p []byte) (int, error) {
	w.lines += bytes.Count(p, []byte{'\n'})
	if w.lines >= w.next {
		w.next = w.lines + w.every
		if h := heap(); h > w.peak {
			w.peak = h
		}
	}
	return len(p), nil
}

var _ io.Writer = (*heapWatch)(nil)

func heap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// Pruning deletes the entries older than the cut, in batches, and keeps
// the newer ones.
func TestPruneDeletesOldEntriesInBatches(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		db, l := open(t, dialect)
		now := time.Now().UTC()
		var es []provlog.Entry
		for i := range 2500 {
			es = append(es, entry(now.Add(-100*24*time.Hour-time.Duration(i)*time.Second), "Old", "", fmt.Sprintf("old%d", i), ""))
		}
		for i := range 10 {
			es = append(es, entry(now.Add(-time.Duration(i)*time.Hour), "New", "", fmt.Sprintf("new%d", i), ""))
		}
		insert(t, db, es)
		// As the expander moved them long ago.
		if _, err := l.Expand(context.Background(), time.Now()); err != nil {
			t.Fatal(err)
		}
		n, err := l.Prune(context.Background(), now.Add(-90*24*time.Hour))
		if err != nil || n != 2500 {
			t.Fatalf("pruned %d, %v", n, err)
		}
		var left int64
		db.Gorm.Table("provisioning_logs").Count(&left)
		if left != 10 {
			t.Errorf("%d entries left, want 10", left)
		}
		// The search index forgets the deleted entries.
		for q, want := range map[string]int{"OLD": 0, "old1": 0, "NEW": 10, "new3": 1} {
			if got, _, err := l.Search(context.Background(), provlog.Filter{Query: q, Limit: 100}); err != nil || len(got) != want {
				t.Errorf("search %q after pruning: %d entries, want %d (%v)", q, len(got), want, err)
			}
		}
	})
}
