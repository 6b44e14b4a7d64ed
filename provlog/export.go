package provlog

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"strconv"
	"time"
)

// csvHeader names the columns of a CSV download.
var csvHeader = []string{"time", "duration_ms", "connector", "connector_type", "action", "kind", "status",
	"source_identity", "source_email", "target_username", "target_external_id", "entitlement", "entitlement_external_id",
	"initiated_by", "trigger", "run_id", "task", "job_id", "job_number", "attempt", "error_class", "error_code",
	"error_message", "recommendation", "request_id", "message", "steps", "modified_properties", "id"}

// Neutralize makes a CSV cell safe to open in a spreadsheet: a cell that
// starts with =, +, -, @ (or a tab or carriage return) would be read as a
// formula, so it gets a leading apostrophe.
func Neutralize(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}

// Download formats: what Download writes.
const (
	FormatCSV  = "csv"
	FormatJSON = "json"
)

// ContentType is the media type of a download in format.
func ContentType(format string) string {
	if format == FormatJSON {
		return "application/json; charset=utf-8"
	}
	return "text/csv; charset=utf-8"
}

// Download writes the entries f selects to w in format (FormatCSV or
// FormatJSON), streamed: the portal's download and the API's are this.
func (l *Log) Download(ctx context.Context, w io.Writer, f Filter, format string) error {
	if format == FormatJSON {
		return l.WriteJSON(ctx, w, f)
	}
	return l.WriteCSV(ctx, w, f)
}

// WriteCSV writes the entries f selects to w as CSV, streamed.
func (l *Log) WriteCSV(ctx context.Context, w io.Writer, f Filter) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	cw := csv.NewWriter(bw)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	row := make([]string, len(csvHeader))
	err := l.Stream(ctx, f, func(e *Entry) error {
		row = row[:0]
		row = append(row, e.At.UTC().Format(time.RFC3339Nano), strconv.FormatInt(e.DurationMS, 10), e.ConnectorName,
			e.ConnectorType, e.Action, e.Kind, e.Status, e.IdentityName, e.IdentityEmail, e.TargetUsername,
			e.TargetExternalID, e.EntitlementName, e.EntitlementExternalID, e.InitiatedBy, e.Trigger, deref(e.InstanceID),
			e.TaskName, deref(e.JobID), strconv.Itoa(e.JobSeq), strconv.Itoa(e.Attempt), e.ErrorClass, e.ErrorCode,
			e.ErrorMessage, e.Recommendation, e.RequestID, e.Message, e.StepsJSON, e.ChangesJSON, e.ID)
		for i := range row {
			row[i] = Neutralize(row[i])
		}
		return cw.Write(row)
	})
	if err != nil {
		return err
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return bw.Flush()
}

// WriteJSON writes the entries f selects to w as a JSON array, streamed.
func (l *Log) WriteJSON(ctx context.Context, w io.Writer, f Filter) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	if _, err := bw.WriteString("["); err != nil {
		return err
	}
	first := true
	err := l.Stream(ctx, f, func(e *Entry) error {
		e.decode()
		if !first {
			if err := bw.WriteByte(','); err != nil {
				return err
			}
		}
		first = false
		return enc.Encode(e)
	})
	if err != nil {
		return err
	}
	if _, err := bw.WriteString("]\n"); err != nil {
		return err
	}
	return bw.Flush()
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
