package app

import (
	"context"

	"gorm.io/gorm"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/requests"
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
