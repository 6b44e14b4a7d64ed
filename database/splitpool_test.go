package database

import "testing"

func TestReadsOnly(t *testing.T) {
	t.Parallel()
	for q, want := range map[string]bool{
		"SELECT * FROM identities":             true,
		"select count(*) from runs":            true,
		"  \n\tSELECT 1":                       true,
		"-- list\nSELECT 1":                    true,
		"/* list */ /* again */SELECT(1)":      true,
		"SELECT":                               true,
		"SELECTED":                             false,
		"select_x()":                           false,
		"WITH c AS (SELECT 1) SELECT * FROM c": false,
		"WITH c AS (SELECT id FROM j) UPDATE j SET s = 1":    false,
		"UPDATE connector_jobs SET status = 'x' RETURNING *": false,
		"INSERT INTO a (b) VALUES (1) RETURNING id":          false,
		"PRAGMA foreign_keys":                                false,
		"-- SELECT\nDELETE FROM a":                           false,
		"/* unterminated SELECT":                             false,
		"-- only a comment":                                  false,
		"":                                                   false,
	} {
		if got := readsOnly(q); got != want {
			t.Errorf("readsOnly(%q) = %v, want %v", q, got, want)
		}
	}
}
