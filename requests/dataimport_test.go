package requests_test

import (
	"context"
	"strings"
	"testing"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

// importable is a connector that only imports: one account, one group.
type importable struct{ connectors.Connector }

func (importable) Kind(op connectors.Operation) string {
	if op == connectors.OpImport {
		return "Import"
	}
	return "Importable"
}

func (importable) Import(ctx context.Context, _ connectors.ImportMode, _ string, sink connectors.ImportSink) (string, error) {
	if err := sink.Entitlement(ctx, connectors.Entitlement{ExternalID: "g1", Name: "G1"}); err != nil {
		return "", err
	}
	return "c1", sink.Account(ctx, connectors.ImportedAccount{Account: connectors.Account{Username: "zed", ExternalID: "zed"}, Entitlements: []string{"g1"}})
}

func TestDataImportRequests(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, &apptest.Options{ConnectorTypes: []connectors.Type{{
			Name: "importable", Label: "Importable", New: func(connectors.Config) (connectors.Connector, error) { return importable{}, nil },
		}}})
		dir, _ := b.Directory(t, "Dir")
		rec, err := b.Connectors.Create(b.Ctx, configured.Input{Name: "Src", Type: "importable"})
		if err != nil {
			t.Fatal(err)
		}
		alice := b.Identity(t, "alice")
		for _, c := range []struct {
			r    requests.Request
			want map[string]string
		}{
			{requests.Request{Type: requests.DataImport, ConnectorID: rec.ID}, map[string]string{"import_mode": "full or delta"}},
			{requests.Request{Type: requests.DataImport, ConnectorID: dir.ID, ImportMode: "full"}, map[string]string{"connector_id": "does not support data import"}},
			{requests.Request{Type: requests.DataImport, ConnectorID: rec.ID, ImportMode: "delta", BeneficiaryType: "identity", BeneficiaryID: alice.ID},
				map[string]string{"beneficiary_type": "connector", "beneficiary_id": "connector"}},
			{requests.Request{Type: requests.DataImport, ConnectorID: rec.ID, ImportMode: "full", Entitlements: []string{"x"}, Duration: "1d"},
				map[string]string{"entitlements": "takes no entitlements", "duration": "time-bound"}},
			{requests.Request{Type: requests.LockAccount, ConnectorID: rec.ID, ImportMode: "full", BeneficiaryType: "identity", BeneficiaryID: alice.ID, Justification: "x"},
				map[string]string{"import_mode": "only data_import"}},
		} {
			got := requests.FieldMap(b.Requests.Validate(b.Ctx, &c.r))
			for f, part := range c.want {
				if !strings.Contains(got[f], part) {
					t.Errorf("%+v: %s = %q, want %q (%v)", c.r, f, got[f], part, got)
				}
			}
		}

		// No beneficiary, no justification: the connector is the beneficiary.
		inst, err := b.Requests.Submit(b.Ctx, requests.Request{Type: requests.DataImport, ConnectorID: rec.ID, ImportMode: "delta"},
			requests.StartOpts{Trigger: requests.TriggerAPI, Actor: "tester"})
		if err != nil {
			t.Fatal(err)
		}
		if inst.BeneficiaryType != requests.BeneficiaryConnector || inst.BeneficiaryID != rec.ID || inst.BeneficiaryName != "Src" {
			t.Errorf("beneficiary: %s %s %s", inst.BeneficiaryType, inst.BeneficiaryID, inst.BeneficiaryName)
		}
		inst = b.WaitSettled(t, inst.ID)
		if inst.Status != requests.InstanceCompleted || len(inst.Jobs) != 1 {
			t.Fatalf("run: %s %s", inst.Status, apptest.Describe(inst))
		}
		j := inst.Jobs[0]
		if j.Kind != "Import.Delta" || j.Operation != string(connectors.OpImport) || j.Username != "" ||
			!strings.Contains(j.Message, "full import read 1 accounts and 1 groups") || !strings.Contains(j.Message, "memberships: 1 added") {
			t.Errorf("job: %s %s %q", j.Kind, j.Operation, j.Message)
		}

		// Saving the connector made its Data Import tasks; the built-in
		// directory, which cannot import, has none.
		list, _, err := b.Tasks.List(b.Ctx, tasks.ListOpts{Query: "Data Import"})
		if err != nil || len(list) != 2 {
			t.Fatalf("tasks: %+v %v", list, err)
		}
		for _, task := range list {
			if task.ConnectorID != rec.ID || task.Type != requests.DataImport || !task.ScheduleEnabled || len(task.NextRuns) == 0 {
				t.Errorf("task %+v", task)
			}
		}
		// A second connector whose task names are taken gets numbered names.
		if _, err := b.Tasks.Create(b.Ctx, tasks.Input{Name: ptr("Data Import (delta) — Src2"), Request: &requests.Request{Type: requests.DataImport,
			ConnectorID: rec.ID, ImportMode: "delta"}}, "tester"); err != nil {
			t.Fatal(err)
		}
		rec2, err := b.Connectors.Create(b.Ctx, configured.Input{Name: "Src2", Type: "importable"})
		if err != nil {
			t.Fatal(err)
		}
		list, _, _ = b.Tasks.List(b.Ctx, tasks.ListOpts{Query: "Src2"})
		var names []string
		for _, task := range list {
			if task.ConnectorID == rec2.ID {
				names = append(names, task.Name)
			}
		}
		if strings.Join(names, ", ") != "Data Import (delta) — Src2 (2), Data Import (full) — Src2" {
			t.Errorf("names: %v", names)
		}
	})
}

func ptr[T any](v T) *T { return &v }
