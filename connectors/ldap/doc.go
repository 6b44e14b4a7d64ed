// Package ldap holds the directory connectors: type "ldap" for OpenLDAP,
// 389 Directory Server and alike, and type "ad" for Active Directory (and
// Samba AD). Both speak LDAP through github.com/go-ldap/ldap/v3.
//
// What they share: settings with one or more server URLs tried in order
// (failover), LDAPS or StartTLS with a CA certificate given in the
// settings, a small pool of bound connections per connector (safe for
// concurrent workers, re-dialled after a server restart), escaping of every
// value put into a filter or a DN, idempotent operations, errors classified
// as transient (server down, busy, unavailable, timed out) or permanent (no
// such object, insufficient access, constraint or schema violation, invalid
// DN), paged full and delta imports, and sign-in with the directory
// (Authenticate).
//
// Where they differ: an "ldap" account is an inetOrgPerson locked through
// the password policy overlay (pwdAccountLockedTime); an "ad" account is a
// user with sAMAccountName and userPrincipalName, a password set as
// unicodePwd over TLS, and is disabled through userAccountControl.
//
// Delta imports start from a watermark kept as the connector's import
// cookie: modifyTimestamp on LDAP, uSNChanged on AD. Neither shows deleted
// entries without a change log or tombstones, so a delta import also lists
// the names (DNs only, a cheap paged search) of every user and group in
// scope, and what the portal knows but is not listed is deleted.
package ldap
