package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/configured"
)

// directorySignIn asks every enabled directory connector that allows
// sign-in (login_enabled), by name, until one accepts the password.
func directorySignIn(store *configured.Store, log *slog.Logger) access.DirectorySignInFunc {
	return func(ctx context.Context, username, password string) (*access.DirectoryIdentity, error) {
		recs, err := store.List(ctx)
		if err != nil {
			return nil, err
		}
		var unreachable error
		for i := range recs {
			r := &recs[i]
			if !r.Enabled {
				continue
			}
			conn, err := store.Open(ctx, r)
			if err != nil {
				continue
			}
			a, ok := conn.(connectors.Authenticator)
			if !ok {
				continue
			}
			u, err := a.Authenticate(ctx, username, password)
			switch {
			case err == nil:
				return &access.DirectoryIdentity{Source: r.Name, Username: u.Username, DisplayName: u.DisplayName, Email: u.Email, IsAdmin: u.IsAdmin}, nil
			case errors.Is(err, connectors.ErrLoginDisabled), errors.Is(err, connectors.ErrInvalidCredentials):
			default:
				log.Warn("directory sign-in failed", "connector", r.Name, "err", err)
				unreachable = err
			}
		}
		if unreachable != nil {
			return nil, fmt.Errorf("%w: %v", access.ErrDirectoryUnavailable, unreachable)
		}
		return nil, access.ErrInvalidCredentials
	}
}
