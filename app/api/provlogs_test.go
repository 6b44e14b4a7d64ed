package api_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/provlog"
)

func logEntry(at time.Time, name, username string) provlog.Entry {
	return provlog.Entry{ID: uuid.NewString(), At: at, ConnectorName: "Corp LDAP", ConnectorType: "ldap", Action: provlog.ActionGrant,
		IdentityName: name, IdentityEmail: strings.ToLower(username) + "@example.test", TargetUsername: username,
		TargetExternalID: "uid=" + username + ",ou=people,dc=example,dc=test", EntitlementName: "VPN",
		Status: provlog.StatusSuccess, InitiatedBy: "admin", Trigger: "manual", Message: "done"}
}

func insertLogs(t *testing.T, b *apptest.Bundle, es []provlog.Entry) {
	t.Helper()
	if err := b.DB.InTx(context.Background(), func(tx *gorm.DB) error { return provlog.InsertTx(tx, es) }); err != nil {
		t.Fatal(err)
	}
}

// The search answers a download of the filtered entries when asked with
// format or Accept: CSV with its formula cells neutralised, or a JSON array;
// a format it does not know is refused.
func TestProvisioningLogDownload(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, &apptest.Options{NoStart: true})
		h := harness{b, t}
		tok := h.token("read")
		now := time.Now().UTC()
		insertLogs(t, b, []provlog.Entry{logEntry(now, "=HYPERLINK(\"http://evil\")", "Mallory"),
			logEntry(now.Add(-time.Second), "Plain Person", "plain"), logEntry(now.Add(-2*time.Second), "Other Person", "other")})

		get := func(path, accept string) (int, http.Header, string) {
			t.Helper()
			req, _ := http.NewRequest("GET", path, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			if accept != "" {
				req.Header.Set("Accept", accept)
			}
			resp, err := b.HTTP.Test(req, 10000)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, resp.Header, string(body)
		}
		for _, c := range []struct{ path, accept string }{
			{"/api/v1/provisioning-logs?format=csv", ""},
			{"/api/v1/provisioning-logs", "text/csv"},
		} {
			status, hdr, body := get(c.path, c.accept)
			if status != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/csv") ||
				!strings.Contains(hdr.Get("Content-Disposition"), ".csv") {
				t.Fatalf("%s (Accept %q): %d %v %s", c.path, c.accept, status, hdr, body)
			}
			rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
			if err != nil || len(rows) != 4 || rows[0][0] != "time" {
				t.Fatalf("%s: %d rows, %v", c.path, len(rows), err)
			}
			for _, row := range rows[1:] {
				for i, cell := range row {
					if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
						t.Errorf("%s: column %s cell %q is read as a formula", c.path, rows[0][i], cell)
					}
				}
			}
			if rows[1][7] != `'=HYPERLINK("http://evil")` {
				t.Errorf("%s: cell %q", c.path, rows[1][7])
			}
		}
		// The filters apply; the search is case-insensitive.
		status, hdr, body := get("/api/v1/provisioning-logs?format=json&q=PLAIN", "")
		var got []provlog.Entry
		if status != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
			t.Fatalf("json: %d %v %s", status, hdr, body)
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil || len(got) != 1 || got[0].TargetUsername != "plain" {
			t.Fatalf("json %s: %v", body, err)
		}
		// Without either, a page.
		var page struct {
			Items []provlog.Entry `json:"items"`
		}
		h.json("GET", "/api/v1/provisioning-logs?q=person", tok, "", 200, &page)
		if len(page.Items) != 2 {
			t.Errorf("page: %d items", len(page.Items))
		}
		if status, _, body := get("/api/v1/provisioning-logs?format=xml", ""); status != 422 || !strings.Contains(body, "format") {
			t.Errorf("format=xml: %d %s", status, body)
		}
	})
}

// A download of 100,000 entries through the API streams them: the heap
// does not grow with the rows sent. Neither the test nor its two databases
// run in parallel with others: the heap is the whole process's.
func TestProvisioningLogDownloadStreams(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dialect string) {
		b := apptest.New(t, dialect, &apptest.Options{NoStart: true})
		tok := harness{b, t}.token("read")
		const n = 100_000
		start := time.Now().UTC()
		for i := 0; i < n; i += 5000 {
			es := make([]provlog.Entry, 5000)
			for k := range es {
				m := i + k
				es[k] = logEntry(start.Add(-time.Duration(m)*time.Millisecond), fmt.Sprintf("Person %d", m), fmt.Sprintf("user%d", m))
			}
			insertLogs(t, b, es)
		}
		// A real listener: the test helper of the HTTP app buffers the
		// whole answer.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = b.HTTP.Listener(ln) }()
		t.Cleanup(func() { _ = ln.Close() })
		req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/api/v1/provisioning-logs", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Accept", "text/csv")
		runtime.GC()
		base := heapNow()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		var lines, next int
		var peak uint64
		buf := make([]byte, 32<<10)
		for {
			k, err := resp.Body.Read(buf)
			lines += bytes.Count(buf[:k], []byte{'\n'})
			if lines >= next {
				next = lines + 20_000
				peak = max(peak, heapNow())
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		// 100,000 entries of about 400 bytes each held would be 40 MB. The
		// heap may also end smaller than it began (a collection ran).
		peak = max(peak, base)
		if lines != n+1 || peak-base > 16<<20 {
			t.Errorf("%d lines; heap grew by %d MB while streaming", lines, (peak-base)>>20)
		}
		t.Logf("%s: %d lines, heap grew by at most %d KB", dialect, lines, (peak-base)>>10)
	})
}

func heapNow() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
