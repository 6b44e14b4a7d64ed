package ldap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"github.com/provisor/provisor/connectors"
)

// permanentCodes are results that retrying cannot change: the input, the
// directory's content or the service account's rights must change first.
var permanentCodes = map[uint16]bool{
	ldapv3.LDAPResultProtocolError:                true,
	ldapv3.LDAPResultAuthMethodNotSupported:       true,
	ldapv3.LDAPResultStrongAuthRequired:           true,
	ldapv3.LDAPResultUnavailableCriticalExtension: true,
	ldapv3.LDAPResultConfidentialityRequired:      true,
	ldapv3.LDAPResultNoSuchAttribute:              true,
	ldapv3.LDAPResultUndefinedAttributeType:       true,
	ldapv3.LDAPResultInappropriateMatching:        true,
	ldapv3.LDAPResultConstraintViolation:          true,
	ldapv3.LDAPResultAttributeOrValueExists:       true,
	ldapv3.LDAPResultInvalidAttributeSyntax:       true,
	ldapv3.LDAPResultNoSuchObject:                 true,
	ldapv3.LDAPResultAliasProblem:                 true,
	ldapv3.LDAPResultInvalidDNSyntax:              true,
	ldapv3.LDAPResultAliasDereferencingProblem:    true,
	ldapv3.LDAPResultInappropriateAuthentication:  true,
	ldapv3.LDAPResultInvalidCredentials:           true,
	ldapv3.LDAPResultInsufficientAccessRights:     true,
	ldapv3.LDAPResultUnwillingToPerform:           true,
	ldapv3.LDAPResultNamingViolation:              true,
	ldapv3.LDAPResultObjectClassViolation:         true,
	ldapv3.LDAPResultNotAllowedOnNonLeaf:          true,
	ldapv3.LDAPResultNotAllowedOnRDN:              true,
	ldapv3.LDAPResultEntryAlreadyExists:           true,
	ldapv3.LDAPResultObjectClassModsProhibited:    true,
	ldapv3.LDAPResultAffectsMultipleDSAs:          true,
	ldapv3.ErrorFilterCompile:                     true,
	ldapv3.ErrorEmptyPassword:                     true,
}

// classify marks err as transient or permanent for the queue, keeping the
// directory's own message. what says what was being done ("add uid=x to
// cn=staff"). Busy (51), unavailable (52), timeouts, network and
// connection errors are transient; the codes in permanentCodes and
// certificate problems are permanent; anything else is retried.
func classify(what string, err error) error {
	if err == nil {
		return nil
	}
	var ce *connectors.Error
	if errors.As(err, &ce) {
		if what == "" {
			return err
		}
		return &connectors.Error{Permanent: ce.Permanent, Class: ce.Class, Err: fmt.Errorf("%s: %w", what, ce.Err), Code: ce.Code}
	}
	if what != "" {
		err = fmt.Errorf("%s: %w", what, err)
	}
	if tlsProblem(err) != "" {
		return &connectors.Error{Permanent: true, Class: connectors.ClassConfig, Err: fmt.Errorf("%w (%s)", err, tlsProblem(err)), Code: "TLS"}
	}
	switch resultCode(err) {
	case ldapv3.LDAPResultInvalidCredentials, ldapv3.LDAPResultInappropriateAuthentication:
		// Only the service account's binds come here: a person's sign-in
		// is told apart before (see Authenticate).
		return coded(connectors.Auth(err))
	}
	var le *ldapv3.Error
	code := ""
	if errors.As(err, &le) && le.ResultCode < ldapv3.ErrorNetwork {
		code = fmt.Sprintf("LDAP %d", le.ResultCode)
	}
	if le != nil && permanentCodes[le.ResultCode] {
		return &connectors.Error{Permanent: true, Err: err, Code: code}
	}
	if unreachable(err) {
		return &connectors.Error{Class: connectors.ClassConnection, Err: err, Code: code}
	}
	return &connectors.Error{Err: err, Code: code}
}

// resultCode returns the LDAP result code of err, or 0.
func resultCode(err error) uint16 {
	var le *ldapv3.Error
	if errors.As(err, &le) {
		return le.ResultCode
	}
	return 0
}

// isConnectionError reports whether err says the connection is unusable
// (as opposed to an answer of the server).
func isConnectionError(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	switch resultCode(err) {
	case ldapv3.ErrorNetwork, ldapv3.LDAPResultServerDown, ldapv3.LDAPResultConnectError,
		ldapv3.LDAPResultTimeout, ldapv3.ErrorUnexpectedMessage, ldapv3.ErrorUnexpectedResponse,
		ldapv3.ErrorMalformedPacket, ldapv3.LDAPResultUnavailable, ldapv3.LDAPResultBusy:
		return true
	}
	return false
}

// unreachable reports whether err says the server could not be reached or
// the connection broke (as opposed to an answer of the server, or the
// worker's own stop).
func unreachable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	switch resultCode(err) {
	case ldapv3.ErrorNetwork, ldapv3.LDAPResultServerDown, ldapv3.LDAPResultConnectError, ldapv3.LDAPResultUnavailable:
		return true
	}
	return false
}

// tlsProblem explains a certificate error in words an admin can act on, or
// returns "" when err is not one.
func tlsProblem(err error) string {
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	var hn x509.HostnameError
	var ve *tls.CertificateVerificationError
	switch {
	case errors.As(err, &ua):
		return "the server's certificate is not signed by the configured CA certificate (settings.ca_cert) nor by a trusted root"
	case errors.As(err, &hn):
		return "the server's certificate does not name the host of the URL; fix the URL or set settings.tls_server_name"
	case errors.As(err, &ci):
		return "the server's certificate is not valid (expired or not for servers): " + ci.Error()
	case errors.As(err, &ve):
		return "the server's certificate could not be verified: " + ve.Err.Error()
	}
	return ""
}

// permanent and transient classify err as connectors.Permanent and
// connectors.Transient do, and keep the LDAP result code in it, for the
// provisioning log.
func permanent(err error) error { return coded(connectors.Permanent(err)) }
func transient(err error) error { return coded(connectors.Transient(err)) }

// coded sets the LDAP result code of a classified error that has none.
func coded(err error) error {
	var ce *connectors.Error
	if errors.As(err, &ce) && ce.Code == "" {
		if c := resultCode(err); c != 0 && c < ldapv3.ErrorNetwork {
			ce.Code = fmt.Sprintf("LDAP %d", c)
		}
	}
	return err
}
