package requests

import "github.com/provisor/provisor/connectors"

// Operations lists the connector operations a request of type t runs.
func (t Type) Operations() []connectors.Operation {
	switch t {
	case CreateAccount:
		return []connectors.Operation{connectors.OpCreateAccount, connectors.OpGrant}
	case DeleteAccount:
		return []connectors.Operation{connectors.OpDeleteAccount}
	case AddEntitlements:
		return []connectors.Operation{connectors.OpGrant}
	case RemoveEntitlements:
		return []connectors.Operation{connectors.OpRevoke}
	case LockAccount:
		return []connectors.Operation{connectors.OpDisableAccount}
	case UnlockAccount:
		return []connectors.Operation{connectors.OpEnableAccount}
	case DataImport:
		return []connectors.Operation{connectors.OpImport}
	}
	return nil
}

// Offers reports whether conn can run every operation of a request of
// type t: the wizard offers, and a request is accepted for, only what a
// connector can do.
func Offers(conn connectors.Connector, t Type) bool {
	ops := t.Operations()
	for _, op := range ops {
		if !connectors.Supports(conn, op) {
			return false
		}
	}
	return len(ops) > 0
}
