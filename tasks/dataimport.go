package tasks

import (
	"context"
	"errors"
	"fmt"

	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/requests"
)

// The schedules of the Data Import tasks a directory connector gets.
const (
	DeltaImportCron = "*/15 * * * *"
	FullImportCron  = "0 2 * * *"
)

// EnsureImportTasks gives a connector that supports data import its Data
// Import tasks when it has none: a delta import every 15 minutes and a full
// import every night at 02:00 UTC, as two tasks (a task has one schedule).
// They are tasks like any other: listed on the tasks grid, triggered by
// hand, their schedules editable. A disabled connector gets them when it is
// saved enabled. It returns the tasks it created.
func (s *Service) EnsureImportTasks(ctx context.Context, rec *configured.Record) ([]*Task, error) {
	if !rec.Enabled {
		return nil, nil
	}
	ok, err := s.reqs.ImportSupported(ctx, rec.ID)
	if err != nil || !ok {
		return nil, err
	}
	var n int64
	if err := s.db.Gorm.WithContext(ctx).Model(&Task{}).Where("connector_id = ? AND type = ?", rec.ID, requests.DataImport).
		Count(&n).Error; err != nil {
		return nil, fmt.Errorf("tasks: data import tasks of %s: %w", rec.Name, err)
	}
	if n > 0 {
		return nil, nil
	}
	var out []*Task
	for _, spec := range []struct {
		mode, cron, what string
	}{
		{string(connectors.ImportDelta), DeltaImportCron, "Reads what changed in %s since the last import, every 15 minutes."},
		{string(connectors.ImportFull), FullImportCron, "Reads all of %s every night, and marks what is gone from it as deleted."},
	} {
		base := fmt.Sprintf("Data Import (%s) — %s", spec.mode, rec.Name)
		name, desc, cron, tz, on := base, fmt.Sprintf(spec.what, rec.Name), spec.cron, "UTC", true
		r := &requests.Request{Type: requests.DataImport, ConnectorID: rec.ID, ImportMode: spec.mode, Priority: requests.Low,
			Justification: "Data import of " + rec.Name}
		var t *Task
		for i := 2; ; i++ {
			t, err = s.Create(ctx, Input{Name: &name, Description: &desc, Request: r, Cron: &cron, Timezone: &tz, ScheduleEnabled: &on}, audit.ActorSystem)
			var ve *requests.ValidationError
			if errors.As(err, &ve) && len(ve.Fields) == 1 && ve.Fields[0].Field == "name" && i < 10 {
				name = fmt.Sprintf("%s (%d)", base, i)
				continue
			}
			break
		}
		if err != nil {
			return out, fmt.Errorf("tasks: data import task of %s: %w", rec.Name, err)
		}
		out = append(out, t)
	}
	return out, nil
}
