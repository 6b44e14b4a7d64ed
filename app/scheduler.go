package app

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/google/uuid"

	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

// Scheduler fires task schedules with gocron. A tick only triggers the task:
// the run is claimed in the database (tasks.TriggerTick), so with several
// processes each tick fires once. Schedules are re-read from the database
// now and then, and at once when this process changes one, so a change made
// anywhere takes effect without a restart.
type Scheduler struct {
	tasks *tasks.Service
	log   *slog.Logger
	sync  time.Duration

	mu      sync.Mutex
	cron    gocron.Scheduler
	jobs    map[string]scheduled // by task id
	kick    chan struct{}
	ctx     context.Context // ends with Start's context or at Stop
	cancel  context.CancelFunc
	done    chan struct{} // closed when the re-read loop has ended
	stopped chan struct{} // closed when Stop has shut gocron down
	stopErr error
}

type scheduled struct {
	key string // cron and time zone
	job uuid.UUID
}

// NewScheduler returns a scheduler that re-reads schedules every syncEvery.
func NewScheduler(t *tasks.Service, log *slog.Logger, syncEvery time.Duration) *Scheduler {
	return &Scheduler{tasks: t, log: log, sync: syncEvery, jobs: map[string]scheduled{}, kick: make(chan struct{}, 1)}
}

// Start loads the schedules and starts firing them, until ctx ends or Stop.
// A scheduler starts once: later calls do nothing.
func (s *Scheduler) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.cron != nil {
		s.mu.Unlock()
		return nil
	}
	// A fire still running at Stop has its context canceled and ends at
	// once; the timeout only bounds a fire that ignores it.
	c, err := gocron.NewScheduler(gocron.WithLocation(time.UTC), gocron.WithStopTimeout(5*time.Second))
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("scheduler: %w", err)
	}
	s.cron = c
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.done = make(chan struct{})
	ctx = s.ctx
	s.mu.Unlock()
	if err := s.reload(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("load schedules", "err", err)
	}
	c.Start()
	go s.loop(ctx)
	return nil
}

// Stop stops firing and waits, until ctx ends, for the fires under way.
// It returns at once when the scheduler never started or already stopped.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.mu.Lock()
	c := s.cron
	first := c != nil && s.stopped == nil
	if first {
		s.stopped = make(chan struct{})
		s.cancel()
	}
	done, stopped := s.done, s.stopped
	s.mu.Unlock()
	if c == nil {
		return nil
	}
	if first {
		go func() {
			<-done
			err := c.Shutdown()
			s.mu.Lock()
			s.stopErr = err
			s.mu.Unlock()
			close(stopped)
		}()
	}
	select {
	case <-stopped:
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.stopErr != nil {
			return fmt.Errorf("scheduler: stop: %w", s.stopErr)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("scheduler: stop: %w", ctx.Err())
	}
}

// Changed asks for the schedules to be re-read now.
func (s *Scheduler) Changed(string) {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Scheduler) loop(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.sync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
		if err := s.reload(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("reload schedules", "err", err)
		}
		if err := s.tasks.Reconcile(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("reconcile task statuses", "err", err)
		}
	}
}

// reload makes the gocron jobs match the schedules in the database.
func (s *Scheduler) reload(ctx context.Context) error {
	list, err := s.tasks.Scheduled(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped != nil {
		return nil
	}
	want := map[string]string{}
	for _, t := range list {
		want[t.ID] = t.Timezone + " " + t.Cron
	}
	for id, sj := range s.jobs {
		if want[id] != sj.key {
			_ = s.cron.RemoveJob(sj.job)
			delete(s.jobs, id)
			s.log.Debug("schedule removed", "task_id", id)
		}
	}
	for _, t := range list {
		if _, ok := s.jobs[t.ID]; ok {
			continue
		}
		if _, _, err := tasks.ParseSchedule(t.Cron, t.Timezone); err != nil {
			s.log.Warn("task has an invalid schedule", "task", t.Name, "err", err)
			continue
		}
		id, name, expr, tz := t.ID, t.Name, t.Cron, t.Timezone
		j, err := s.cron.NewJob(
			gocron.CronJob("CRON_TZ="+tz+" "+expr, false),
			gocron.NewTask(func() { _, _ = s.fire(id, name, expr, tz, time.Now()) }),
			gocron.WithName(name),
		)
		if err != nil {
			s.log.Warn("cannot schedule task", "task", name, "err", err)
			continue
		}
		s.jobs[t.ID] = scheduled{key: want[t.ID], job: j.ID()}
		s.log.Debug("schedule added", "task_id", id, "task", name, "cron", expr, "timezone", tz)
	}
	return nil
}

// earlyFire is how early a fire may come and still claim the tick it was
// scheduled for: gocron fires on time or late, but the wall clock may be
// stepped back a little under it.
const earlyFire = time.Second

// fire claims the tick of a task's schedule (expr in time zone tz) that a
// fire at the time at belongs to, and starts its run. The tick is the
// schedule's latest activation at or before at: a fire that comes late
// claims its own tick, never a later one, so each process claims the same
// tick for it, and the next fire's tick is still free.
func (s *Scheduler) fire(taskID, name, expr, tz string, at time.Time) (*requests.Instance, error) {
	tick, err := tasks.PrevRun(expr, tz, at.Add(earlyFire))
	if err != nil {
		s.log.Error("scheduled run failed to start", "task", name, "at", at, "err", err)
		return nil, err
	}
	tick = tick.UTC()
	ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
	defer cancel()
	inst, err := s.tasks.TriggerTick(ctx, taskID, tick)
	switch {
	case err != nil:
		s.log.Error("scheduled run failed to start", "task", name, "tick", tick, "err", err)
	case inst == nil:
		s.log.Debug("tick already fired by another process", "task", name, "tick", tick)
	default:
		s.log.Info("scheduled run started", "task", name, "tick", tick, "late", at.Sub(tick).Round(time.Millisecond), "instance", inst.ID)
	}
	return inst, err
}

// NextRun returns when this process will next fire a task's schedule, and
// false when the task has no schedule here (none, disabled, or not yet read).
func (s *Scheduler) NextRun(taskID string) (time.Time, bool) {
	s.mu.Lock()
	sj, ok := s.jobs[taskID]
	c := s.cron
	s.mu.Unlock()
	if !ok || c == nil {
		return time.Time{}, false
	}
	for _, j := range c.Jobs() {
		if j.ID() == sj.job {
			next, err := j.NextRun()
			return next, err == nil && !next.IsZero()
		}
	}
	return time.Time{}, false
}
