package api_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

// A schedule triggers its task, so what makes a task run by itself needs
// the trigger scope besides tasks: giving a task a schedule, changing or
// switching one on, enabling a disabled task whose schedule is on, and
// changing the request of a task with a schedule. The rest of a task is
// the tasks scope's alone.
func TestScheduleChangesNeedTrigger(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		h := harness{apptest.New(t, dialect, &apptest.Options{NoStart: true}), t}
		dir, ents := h.Directory(t, "Corp Directory", "VPN", "Wiki")
		alice := h.Identity(t, "alice")
		request := func(ent string) requests.Request {
			return requests.Request{Type: requests.AddEntitlements, BeneficiaryType: "identity", BeneficiaryID: alice.ID,
				ConnectorID: dir.ID, Entitlements: []string{ents[ent].ID}, Justification: "docs"}
		}
		requestJSON := func(ent string) string {
			b, _ := json.Marshal(request(ent))
			return string(b)
		}
		tokens := map[string]string{
			"tasks":         h.token(access.ScopeRead, access.ScopeTasks),
			"tasks+trigger": h.token(access.ScopeRead, access.ScopeTasks, access.ScopeTrigger),
			"trigger":       h.token(access.ScopeRead, access.ScopeTrigger),
		}
		// fixture makes the task a case starts from: none, one without a
		// schedule, one with its schedule on or off, or a disabled one
		// whose schedule is on.
		n := 0
		fixture := func(kind string) *tasks.Task {
			if kind == "" {
				return nil
			}
			n++
			name, r := fmt.Sprintf("Task %d", n), request("VPN")
			in := tasks.Input{Name: &name, Request: &r}
			if kind != "plain" {
				cron, on := "0 7 * * *", kind != "schedule off"
				in.Cron, in.ScheduleEnabled = &cron, &on
			}
			tk, err := h.Tasks.Create(h.Ctx, in, "test")
			if err != nil {
				t.Fatal(err)
			}
			if kind == "disabled" {
				off := false
				if tk, err = h.Tasks.Update(h.Ctx, tk.ID, tasks.Input{Enabled: &off}, "test"); err != nil {
					t.Fatal(err)
				}
			}
			return tk
		}
		asRead := func(tk *tasks.Task) string { // the task's fields as GET shows them
			b, _ := json.Marshal(map[string]any{"name": tk.Name, "description": tk.Description, "request": tk.Request,
				"cron": tk.Cron, "timezone": tk.Timezone, "schedule_enabled": tk.ScheduleEnabled, "notify": tk.Notify})
			return string(b)
		}
		cases := []struct {
			name    string
			fixture string // "" creates a task
			body    func(tk *tasks.Task) string
			// want is the status with tasks alone and with tasks and trigger.
			tasksOnly, both int
		}{
			{"create without a schedule", "", func(*tasks.Task) string {
				return `{"name":"New","request":` + requestJSON("VPN") + `}`
			}, 201, 201},
			{"create with a schedule", "", func(*tasks.Task) string {
				return `{"name":"New","request":` + requestJSON("VPN") + `,"cron":"* * * * *"}`
			}, 403, 201},
			{"create with a schedule switched off", "", func(*tasks.Task) string {
				return `{"name":"New","request":` + requestJSON("VPN") + `,"cron":"* * * * *","schedule_enabled":false}`
			}, 403, 201},
			{"create with the schedule switched on", "", func(*tasks.Task) string {
				return `{"name":"New","request":` + requestJSON("VPN") + `,"schedule_enabled":true}`
			}, 403, 422},
			{"rename", "plain", func(tk *tasks.Task) string { return `{"name":"` + tk.Name + ` renamed","description":"x"}` }, 200, 200},
			{"change the request", "plain", func(*tasks.Task) string { return `{"request":` + requestJSON("Wiki") + `}` }, 200, 200},
			{"give a schedule", "plain", func(*tasks.Task) string { return `{"cron":"* * * * *"}` }, 403, 200},
			{"rename a scheduled task", "scheduled", func(tk *tasks.Task) string { return `{"name":"` + tk.Name + ` renamed","description":"x"}` }, 200, 200},
			{"send a scheduled task back as read", "scheduled", asRead, 200, 200},
			{"change the request of a scheduled task", "scheduled", func(*tasks.Task) string {
				return `{"request":` + requestJSON("Wiki") + `}`
			}, 403, 200},
			{"change the request of a task whose schedule is off", "schedule off", func(*tasks.Task) string {
				return `{"request":` + requestJSON("Wiki") + `}`
			}, 403, 200},
			{"change the cron", "scheduled", func(*tasks.Task) string { return `{"cron":"* * * * *"}` }, 403, 200},
			{"change the time zone", "scheduled", func(*tasks.Task) string { return `{"timezone":"Europe/Paris"}` }, 403, 200},
			{"switch the schedule on", "schedule off", func(*tasks.Task) string { return `{"schedule_enabled":true}` }, 403, 200},
			{"switch the schedule off", "scheduled", func(*tasks.Task) string { return `{"schedule_enabled":false}` }, 403, 200},
			{"remove the schedule", "scheduled", func(*tasks.Task) string { return `{"cron":""}` }, 403, 200},
			{"disable a scheduled task", "scheduled", func(*tasks.Task) string { return `{"enabled":false}` }, 200, 200},
			{"enable a disabled scheduled task", "disabled", func(*tasks.Task) string { return `{"enabled":true}` }, 403, 200},
		}
		for _, c := range cases {
			for _, sc := range []string{"tasks", "tasks+trigger", "trigger"} {
				// A task made by the case before goes, so that this one can use the name.
				if tk, err := h.Tasks.ByName(h.Ctx, "New"); err == nil {
					if err := h.Tasks.Delete(h.Ctx, tk.ID, "test"); err != nil {
						t.Fatal(err)
					}
				}
				want := map[string]int{"tasks": c.tasksOnly, "tasks+trigger": c.both, "trigger": 403}[sc]
				tk := fixture(c.fixture)
				method, path := "POST", "/api/v1/tasks"
				if tk != nil {
					method, path = "PATCH", "/api/v1/tasks/"+tk.ID
				}
				status, _, body := h.do(method, path, tokens[sc], "application/json", c.body(tk))
				if status != want {
					t.Errorf("%s with %s: %d, want %d: %s", c.name, sc, status, want, body)
					continue
				}
				if status != 403 {
					continue
				}
				missing := map[string]string{"tasks": "trigger", "trigger": "tasks"}[sc]
				if !strings.Contains(body, "needs the "+missing+" scope") {
					t.Errorf("%s with %s: the refusal does not name the %s scope: %s", c.name, sc, missing, body)
				}
				// A refusal changes nothing.
				if tk == nil {
					if _, err := h.Tasks.ByName(h.Ctx, "New"); err == nil {
						t.Errorf("%s with %s: the task was created", c.name, sc)
					}
				} else if after, err := h.Tasks.Get(h.Ctx, tk.ID); err != nil || asRead(after) != asRead(tk) || after.Status != tk.Status {
					t.Errorf("%s with %s: the task changed: %+v %v", c.name, sc, after, err)
				}
			}
		}
	})
}
