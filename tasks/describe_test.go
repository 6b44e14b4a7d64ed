package tasks

import "testing"

func TestDescribe(t *testing.T) {
	for expr, want := range map[string]string{
		"0 22 * * *":    "At 22:00, every day (UTC)",
		"*/15 * * * *":  "Every 15 minutes, every day (UTC)",
		"30 7 * * 1-5":  "At 07:30, Monday to Friday (UTC)",
		"0 2 1 * *":     "At 02:00, on day 1 of the month (UTC)",
		"0 9 * 1,7 mon": "At 09:00, Monday, in January and July (UTC)",
		"5 * * * *":     "At minute 5 of every hour, every day (UTC)",
		"0 8,12 * * *":  "At minute 0 past hour 8 and 12, every day (UTC)",
		"@daily":        "At 00:00, every day (UTC)",
		"61 * * * *":    "",
	} {
		if got := Describe(expr, "UTC"); got != want {
			t.Errorf("Describe(%q) = %q, want %q", expr, got, want)
		}
	}
}
