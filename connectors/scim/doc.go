// Package scim is the "scim" connector type: any app that takes users and
// groups over SCIM 2.0 (RFC 7643 schema, RFC 7644 protocol), through the
// REST client base of package connectors.
//
// Accounts are SCIM Users, found by their id (the account's external id)
// or by filter=userName eq "…" with the name escaped, so that a quote or a
// backslash in it cannot change the filter. Entitlements are SCIM Groups;
// grants and revokes PATCH the group's members. Every operation is
// idempotent: a 409 on create adopts the user already there, a member
// already there or already gone is no change, a 404 on delete is no
// change. The settings carry switches for what real targets do their own
// way (PATCH op case, 200 or 204 answers, booleans as strings, how a member
// is removed); the defaults follow RFC 7644.
//
// Package scimtest serves an independent SCIM server implementation
// (github.com/elimity-com/scim) around an in-memory store for the tests.
package scim
