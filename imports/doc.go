// Package imports reads a connector's directory into the portal's view of
// it (package identities): it collects what the system holds, plans the
// changes against what the portal knows, applies them in one transaction,
// and holds back an import that would delete or lock too much until an
// admin approves or rejects it. Each import is kept with its counts and
// planned changes.
package imports
