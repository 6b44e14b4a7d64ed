package app

import (
	"context"
	"errors"

	"gorm.io/gorm"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/notifier"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

// people gives the approval flow the portal's users (requests.People).
type people struct{ access *access.Service }

func person(l *access.Linked) requests.Person {
	return requests.Person{Username: l.Username, Name: l.Name(), Email: l.Address(), IdentityID: l.LinkedIdentityID,
		Admin: l.Role == access.RoleAdmin}
}

func persons(ls []access.Linked, err error) ([]requests.Person, error) {
	if err != nil {
		return nil, err
	}
	out := make([]requests.Person, len(ls))
	for i := range ls {
		out[i] = person(&ls[i])
	}
	return out, nil
}

func (p people) UsersOfTx(ctx context.Context, tx *gorm.DB, identityIDs []string) ([]requests.Person, error) {
	return persons(p.access.LinkedUsersTx(ctx, tx, identityIDs))
}

func (p people) AdminsTx(ctx context.Context, tx *gorm.DB) ([]requests.Person, error) {
	return persons(p.access.AdminsTx(ctx, tx))
}

func (p people) UserTx(ctx context.Context, tx *gorm.DB, username string) (*requests.Person, error) {
	l, err := p.access.LinkedUserTx(ctx, tx, username)
	if err != nil || l == nil {
		return nil, err
	}
	out := person(l)
	return &out, nil
}

// mailboxes answers the notifier's questions (notifier.Directory) from the
// services that own tasks, users and identities.
type mailboxes struct {
	access     *access.Service
	identities *identities.Service
}

func (m mailboxes) TaskNotifyTx(ctx context.Context, tx *gorm.DB, taskID string) (*tasks.Notify, error) {
	return tasks.NotifyTx(ctx, tx, taskID)
}

func (m mailboxes) UserMailboxTx(ctx context.Context, tx *gorm.DB, username string) (*notifier.Mailbox, error) {
	l, err := m.access.LinkedUserTx(ctx, tx, username)
	if err != nil || l == nil {
		return nil, err
	}
	return &notifier.Mailbox{Name: l.Name(), Address: l.Address()}, nil
}

func (m mailboxes) IdentityTx(ctx context.Context, tx *gorm.DB, id string) (*identities.Identity, error) {
	p, err := m.identities.GetIdentityTx(ctx, tx, id)
	if errors.Is(err, identities.ErrNotFound) {
		return nil, nil
	}
	return p, err
}

func (m mailboxes) MembersTx(ctx context.Context, tx *gorm.DB, workgroupID string) ([]identities.Identity, error) {
	return m.identities.Members(ctx, tx, workgroupID)
}

func (m mailboxes) AdminMailboxesTx(ctx context.Context, tx *gorm.DB) ([]notifier.Mailbox, error) {
	ls, err := m.access.AdminsTx(ctx, tx)
	if err != nil {
		return nil, err
	}
	out := make([]notifier.Mailbox, len(ls))
	for i := range ls {
		out[i] = notifier.Mailbox{Name: ls[i].Name(), Address: ls[i].Address()}
	}
	return out, nil
}
