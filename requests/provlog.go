package requests

import (
	"errors"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/provlog"
)

// logOutcomesTx writes the provisioning log's entries of the outcomes that
// were recorded (updated): one per attempt of an operation, and one per
// job skipped because the job it needed failed. An attempt whose result
// is not recorded (the job was ended by someone else meanwhile) has none.
// The names of the identities are read in one statement.
func (s *Service) logOutcomesTx(tx *gorm.DB, batch []*pendingWrite, insts map[string]*Instance, updated map[string]bool) error {
	if s.opts.NoProvisioningLog {
		return nil
	}
	var entries []provlog.Entry
	people := map[string]bool{}
	for _, w := range batch {
		inst := insts[w.r.first.InstanceID]
		if inst == nil {
			continue
		}
		for i := range w.outs {
			o := &w.outs[i]
			if !updated[o.job.ID] || (!o.claimed && o.status != JobCanceled) {
				continue
			}
			entries = append(entries, entryOf(w.r, inst, o))
			if id := o.job.IdentityID; id != nil {
				people[*id] = true
			}
		}
	}
	if len(entries) == 0 {
		return nil
	}
	if len(people) > 0 {
		ids := make([]string, 0, len(people))
		for id := range people {
			ids = append(ids, id)
		}
		var rows []struct{ ID, DisplayName, Email string }
		if err := tx.Table("identities").Select("id, display_name, email").Where("id IN ?", ids).Scan(&rows).Error; err != nil {
			return err
		}
		byID := make(map[string]int, len(rows))
		for i, r := range rows {
			byID[r.ID] = i
		}
		for i := range entries {
			if id := entries[i].IdentityID; id != nil {
				if k, ok := byID[*id]; ok {
					entries[i].IdentityName, entries[i].IdentityEmail = rows[k].DisplayName, rows[k].Email
				}
			}
		}
	}
	return provlog.InsertTx(tx, entries)
}

// entryOf is the provisioning log's entry of an outcome.
func entryOf(r *setRun, inst *Instance, o *outcome) provlog.Entry {
	j := o.job
	e := provlog.Entry{
		ID: uuid.NewString(), At: o.startedAt, DurationMS: o.endedAt.Sub(o.startedAt).Milliseconds(),
		ConnectorID: &j.ConnectorID, ConnectorName: j.ConnectorName, ConnectorType: j.ConnectorType,
		Action: provlog.ActionOf(connectors.Operation(j.Operation)), Operation: j.Operation, Kind: j.Kind,
		IdentityID: j.IdentityID, TargetUsername: j.Username, EntitlementName: j.EntitlementName,
		InitiatedBy: inst.TriggeredBy, Trigger: inst.Trigger, InstanceID: &j.InstanceID, TaskID: inst.TaskID,
		TaskName: inst.TaskName, JobID: &j.ID, JobSeq: j.Seq, Message: o.message,
		RequestID: o.result.RequestID, Steps: o.result.Steps, Changes: o.result.Changes,
	}
	if inst.BeneficiaryType == "identity" && j.IdentityID == nil {
		e.IdentityName = inst.BeneficiaryName
	}
	if o.claimed {
		e.Attempt = r.qj.Attempt
	}
	e.TargetExternalID, e.EntitlementExternalID = o.result.ExternalID, o.entitlementID
	if e.TargetExternalID == "" {
		e.TargetExternalID = o.targetID
	}
	switch {
	case o.status == JobCompleted && o.result.Warning:
		e.Status = provlog.StatusWarning
	case o.status == JobCompleted && o.result.Changed:
		e.Status = provlog.StatusSuccess
	case o.status == JobCompleted:
		e.Status = provlog.StatusNoChange
	case !o.claimed:
		e.Status = provlog.StatusSkipped
	case o.err == nil:
		e.Status = provlog.StatusWarning
	default:
		_, throttled := connectors.RetryAfterOf(o.err)
		if o.status == JobPending && (throttled || errors.Is(o.err, errAttemptEnded)) {
			e.Status = provlog.StatusWarning
		} else {
			e.Status = provlog.StatusFailure
		}
		e.ErrorClass, e.ErrorCode, e.ErrorMessage = provlog.Failure(o.err)
		if e.RequestID == "" {
			e.RequestID = connectors.RequestIDOf(o.err)
		}
	}
	return e
}
