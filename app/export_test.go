package app

import (
	"time"

	"github.com/provisor/provisor/requests"
)

// Fire fires a task's schedule (expr in time zone tz) as gocron does at the
// time at.
func (s *Scheduler) Fire(taskID, expr, tz string, at time.Time) (*requests.Instance, error) {
	return s.fire(taskID, "", expr, tz, at)
}
