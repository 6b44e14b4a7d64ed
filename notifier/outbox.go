package notifier

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

// recipient is one address a completion email goes to.
type recipient struct {
	Type    string
	Name    string
	Address string
}

// InstanceSettledTx is the requests.SettledFunc that writes an instance's
// completion emails to the outbox, with their delivery jobs, in the
// transaction that ends it. It acts once per instance, on the change into a
// final status; the once key of each message makes a second call write
// nothing.
//
// Time-bound access mails twice: when it is granted (the run turns active,
// its revocations scheduled: "granted until …") and when it ends (the run
// completes once the revocations ran: "revoked").
func (s *Service) InstanceSettledTx(ctx context.Context, tx *gorm.DB, inst *requests.Instance, prev string) error {
	granted := inst.Status == requests.InstanceActive && prev != requests.InstanceActive && !requests.Final(prev)
	if s.dir == nil || (!granted && (!requests.Final(inst.Status) || requests.Final(prev))) {
		return nil
	}
	var a *requests.Approval
	var err error
	if inst.ApprovalID != nil {
		if a, err = requests.ApprovalTx(ctx, tx, *inst.ApprovalID); err != nil && !errors.Is(err, requests.ErrNotFound) {
			return err
		}
		if a != nil && inst.Status == requests.InstanceWithdrawn && strings.EqualFold(a.DecidedBy, a.RequestedBy) {
			return nil // the requester withdrew it, and knows
		}
	}
	// The requester of a run that waited for its approval is who asked
	// for it (an API client acting for a user asks as that user).
	requester := inst.TriggeredBy
	if a != nil && inst.TaskID == nil && inst.TaskName == "" && a.RequestedBy != "" {
		requester = a.RequestedBy
	}
	recips, err := s.recipientsTx(ctx, tx, inst, requester)
	if err != nil || len(recips) == 0 {
		return err
	}
	jobs, err := requests.JobsTx(ctx, tx, inst.ID)
	if err != nil {
		return fmt.Errorf("notifier: jobs of %s: %w", inst.ID, err)
	}
	content, err := s.render.render(inst, jobs, a)
	if err != nil {
		return err
	}
	rows := make([]Notification, len(recips))
	for i, r := range recips {
		rows[i] = s.newNotification(inst.ID, r, content)
		if granted {
			// The grant's message has a key of its own: the revocation's
			// comes later under the run's usual key.
			rows[i].OnceKey = inst.ID + " granted " + r.Address
		}
	}
	_, err = s.EnqueueTx(ctx, tx, rows)
	return err
}

// newNotification is a new outbox row about a run: queued when an SMTP
// server is configured, held otherwise. Its Message-ID is made here, once.
func (s *Service) newNotification(instanceID string, r recipient, c *Content) Notification {
	n := s.newMessage(r, c, instanceID+" "+r.Address)
	n.InstanceID = &instanceID
	return n
}

// newMessage is a new outbox row for r with content c and once key key.
func (s *Service) newMessage(r recipient, c *Content, key string) Notification {
	now := s.now().UTC()
	id := uuid.NewString()
	n := Notification{
		ID: id, OnceKey: key, RecipientType: r.Type, Recipient: r.Name, Address: r.Address,
		Subject: c.Subject, BodyText: c.Text, BodyHTML: c.HTML, MessageID: id + "@" + s.msgHost,
		Status: StatusQueued, CreatedAt: now, QueuedAt: now, UpdatedAt: now,
	}
	if s.mailer == nil {
		n.Status, n.LastError = StatusHeld, heldReason
	}
	return n
}

// EnqueueTx writes outbox rows in tx, skipping those whose once key is
// already there, and inserts the delivery jobs of the queued
// ones. It returns how many rows it wrote. A row with the same run and
// parts as the row before it shares that row's body (EnqueueTx sets
// BodyID), so a run's email is stored once, whatever its recipients.
func (s *Service) EnqueueTx(ctx context.Context, tx *gorm.DB, rows []Notification) (int, error) {
	const batch = 200
	for i := range rows {
		rows[i].BodyID = nil
		if i > 0 && sameBody(&rows[i-1], &rows[i]) {
			owner := &rows[i-1].ID
			if rows[i-1].BodyID != nil {
				owner = rows[i-1].BodyID
			}
			rows[i].BodyID = owner
		}
	}
	var queued []string
	written := 0
	owners := map[string]bool{} // rows written here that hold a body row
	for start := 0; start < len(rows); start += batch {
		part := rows[start:min(start+batch, len(rows))]
		res := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "once_key"}}, DoNothing: true}).Create(&part)
		if res.Error != nil {
			return written, fmt.Errorf("notifier: write notifications: %w", res.Error)
		}
		var inserted map[string]bool // nil: every row of part
		if int(res.RowsAffected) != len(part) {
			// Some were there already: the new ids that exist are ours.
			ids := make([]string, len(part))
			for i, n := range part {
				ids[i] = n.ID
			}
			var found []string
			if err := tx.Model(&Notification{}).Where("id IN ?", ids).Pluck("id", &found).Error; err != nil {
				return written, fmt.Errorf("notifier: write notifications: %w", err)
			}
			inserted = make(map[string]bool, len(found))
			for _, id := range found {
				inserted[id] = true
			}
		}
		var bodies []body
		var orphans []string
		for i := range part {
			n := &part[i]
			if inserted != nil && !inserted[n.ID] {
				continue
			}
			written++
			if n.BodyID != nil && !owners[*n.BodyID] {
				// The run's first message was there already, with its
				// body: this one gets a body row of its own.
				n.BodyID = nil
				orphans = append(orphans, n.ID)
			}
			if n.BodyID == nil {
				owners[n.ID] = true
				bodies = append(bodies, body{NotificationID: n.ID, BodyText: n.BodyText, BodyHTML: n.BodyHTML})
			}
			if n.Status == StatusQueued {
				queued = append(queued, n.ID)
			}
		}
		if len(orphans) > 0 {
			if err := tx.Model(&Notification{}).Where("id IN ?", orphans).Update("body_id", nil).Error; err != nil {
				return written, fmt.Errorf("notifier: write notifications: %w", err)
			}
		}
		if len(bodies) > 0 {
			if err := tx.Create(&bodies).Error; err != nil {
				return written, fmt.Errorf("notifier: write notification bodies: %w", err)
			}
		}
	}
	if len(queued) > 0 {
		if s.queue == nil {
			return written, errors.New("notifier: no queue configured")
		}
		if _, err := s.queue.InsertTx(ctx, tx, deliveryJobs(s.jobParts(queued))); err != nil {
			return written, err
		}
	}
	return written, nil
}

// sameBody reports whether two rows are of one run and have the same
// parts. The rows of a run come from one rendering and hold the same
// strings, which compare without reading them.
func sameBody(a, b *Notification) bool {
	return a.InstanceID != nil && b.InstanceID != nil && *a.InstanceID == *b.InstanceID && a.BodyText == b.BodyText && a.BodyHTML == b.BodyHTML
}

// Queue is the River queue of deliveries. It is apart from connector
// jobs so that neither waits for the other: a slow SMTP server does not
// hold connector job slots, and a large run does not delay mail.
const Queue = "notifications"

// QueueWorkers is how many deliveries a process works at once. They share
// a few SMTP connections and mostly wait for one, so they are cheap; and
// River persists completed jobs in batches of 100 (or every 250 ms), which
// caps a queue of fewer than 100 workers at a few hundred jobs a second.
const QueueWorkers = 100

// deliveryJobs are the queue entries of messages written or released
// together, one per part (see jobParts).
func deliveryJobs(parts [][]string) []river.InsertManyParams {
	out := make([]river.InsertManyParams, len(parts))
	for i, part := range parts {
		out[i] = deliveryParams(DeliveryArgs{NotificationIDs: part})
	}
	return out
}

// jobParts splits messages written or released together into delivery
// jobs of even sizes. A job sends its messages over one connection, and
// costs more than a message: the messages go in one job per connection
// when they are enough to share (firstRead each), and in more jobs only
// when one would have more than maxPerJob.
func (s *Service) jobParts(ids []string) [][]string {
	if len(ids) == 0 {
		return nil
	}
	n := max((len(ids)+maxPerJob-1)/maxPerJob, min(s.conns, len(ids)/firstRead), 1)
	out := make([][]string, 0, n)
	for i := range n {
		out = append(out, ids[i*len(ids)/n:(i+1)*len(ids)/n])
	}
	return out
}

// deliveryParams is the queue entry of messages. Attempts are counted on
// the outbox rows: the worker snoozes between them, which River does not
// count, so MaxAttempts only bounds unexpected errors (a database outage).
func deliveryParams(args DeliveryArgs) river.InsertManyParams {
	return river.InsertManyParams{Args: args, InsertOpts: &river.InsertOpts{Queue: Queue, MaxAttempts: 25}}
}

// recipientsTx resolves who is told about an instance, read in tx. A
// recipient without a mailbox is skipped and logged, never an error: the
// run has ended and its end must commit.
func (s *Service) recipientsTx(ctx context.Context, tx *gorm.DB, inst *requests.Instance, requester string) ([]recipient, error) {
	var names []string
	switch {
	case inst.TaskID != nil:
		n, err := s.dir.TaskNotifyTx(ctx, tx, *inst.TaskID)
		if err != nil {
			return nil, fmt.Errorf("notifier: task of %s: %w", inst.ID, err)
		}
		if n == nil || !n.Enabled || !wanted(n.When, inst.Status) {
			return nil, nil
		}
		names = n.Recipients
	case inst.TaskName != "":
		return nil, nil // the task was deleted, and its settings with it
	default:
		// A direct submission tells its requester.
		names = []string{tasks.NotifyRequester}
	}
	var out []recipient
	seen := map[string]bool{}
	add := func(r recipient) {
		if key := strings.ToLower(r.Address); !seen[key] {
			seen[key] = true
			out = append(out, r)
		}
	}
	skip := func(who, why string) {
		s.log.Info("notification recipient skipped", "instance", inst.ID, "recipient", who, "reason", why)
	}
	for _, name := range names {
		switch name {
		case tasks.NotifyRequester:
			r, why, err := s.requesterTx(ctx, tx, requester)
			if err != nil {
				return nil, err
			}
			if r == nil {
				skip("requester "+requester, why)
				continue
			}
			add(*r)
		case tasks.NotifyBeneficiary:
			people, err := s.beneficiariesTx(ctx, tx, inst)
			if err != nil {
				return nil, err
			}
			for _, p := range people {
				if p.Email == "" {
					skip("beneficiary "+p.Username, "no email address")
					continue
				}
				add(recipient{Type: RecipientBeneficiary, Name: nameOf(&p), Address: p.Email})
			}
		default:
			p, err := s.dir.IdentityTx(ctx, tx, name)
			switch {
			case err != nil:
				return nil, fmt.Errorf("notifier: recipient %s: %w", name, err)
			case p == nil:
				skip("identity "+name, "no such identity (deleted since the task was saved)")
			case p.Email == "" || p.Status == "deleted":
				skip("identity "+p.Username, "no email address or deleted since the task was saved")
			default:
				add(recipient{Type: RecipientIdentity, Name: nameOf(p), Address: p.Email})
			}
		}
	}
	return out, nil
}

// wanted reports whether a task's "when" setting asks for a run that ended
// in status: failure covers failed and canceled runs.
func wanted(when, status string) bool {
	switch when {
	case "failure":
		return status != requests.InstanceCompleted && status != requests.InstanceActive
	case "success":
		return status == requests.InstanceCompleted || status == requests.InstanceActive
	}
	return true
}

// requesterTx finds the mailbox of who started a run: a portal user's email,
// or the email of the identity the user is linked to (the Directory says
// which). API clients and the scheduler have none.
func (s *Service) requesterTx(ctx context.Context, tx *gorm.DB, by string) (*recipient, string, error) {
	switch {
	case by == "":
		return nil, "the run does not say who started it", nil
	case by == audit.ActorScheduler:
		return nil, "started by the scheduler, which has no mailbox", nil
	case strings.HasPrefix(by, "api:"):
		return nil, "started by an API client, which has no mailbox", nil
	case audit.IsInternal(by):
		return nil, "started by " + by + ", which has no mailbox", nil
	}
	m, err := s.dir.UserMailboxTx(ctx, tx, by)
	if err != nil {
		return nil, "", fmt.Errorf("notifier: requester %s: %w", by, err)
	}
	if m == nil {
		return nil, "no portal user with that name", nil
	}
	if m.Address == "" {
		return nil, "the portal user has no email address", nil
	}
	return &recipient{Type: RecipientRequester, Name: m.Name, Address: m.Address}, "", nil
}

// beneficiariesTx returns the identity an instance was for, or every
// member of its workgroup.
func (s *Service) beneficiariesTx(ctx context.Context, tx *gorm.DB, inst *requests.Instance) ([]identities.Identity, error) {
	if inst.BeneficiaryType == requests.BeneficiaryWorkgroup {
		out, err := s.dir.MembersTx(ctx, tx, inst.BeneficiaryID)
		if err != nil {
			return nil, fmt.Errorf("notifier: members of %s: %w", inst.BeneficiaryName, err)
		}
		return out, nil
	}
	p, err := s.dir.IdentityTx(ctx, tx, inst.BeneficiaryID)
	if err != nil {
		return nil, fmt.Errorf("notifier: beneficiary of %s: %w", inst.ID, err)
	}
	if p == nil {
		return nil, nil
	}
	return []identities.Identity{*p}, nil
}

func nameOf(p *identities.Identity) string {
	if p.DisplayName != "" {
		return p.DisplayName
	}
	return p.Username
}
