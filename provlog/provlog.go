// Package provlog is the provisioning log: one entry per attempt of an
// operation on a target system, and one per import cycle, saying when, on
// which connector, what was done to whom, at whose initiative, and how it
// ended (with the system's error code, its request id, the steps taken and
// the properties changed where the connector tells them).
//
// Entries are written by the requests package in the transaction that
// records the job's result (InsertTx), so an attempt is logged if and only
// if its result is. Search, export and retention are here, next to the
// table.
package provlog

import (
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/provisor/provisor/connectors"
)

// Statuses of an entry.
const (
	StatusSuccess  = "success"
	StatusNoChange = "no_change"
	StatusFailure  = "failure"
	StatusSkipped  = "skipped"
	StatusWarning  = "warning"
)

// Statuses lists the statuses in the order a filter offers them.
var Statuses = []string{StatusSuccess, StatusNoChange, StatusFailure, StatusSkipped, StatusWarning}

// Error classes of a failed entry.
const (
	ClassTransient     = "transient"
	ClassPermanent     = "permanent"
	ClassConfiguration = "configuration"
	ClassAuthorization = "authorization"
)

// Classes lists the error classes in the order a filter offers them.
var Classes = []string{ClassTransient, ClassPermanent, ClassConfiguration, ClassAuthorization}

// Actions of an entry.
const (
	ActionCreate  = "create"
	ActionEnable  = "enable"
	ActionDisable = "disable"
	ActionDelete  = "delete"
	ActionGrant   = "grant"
	ActionRevoke  = "revoke"
	ActionImport  = "import"
)

// Actions lists the actions in the order a filter offers them.
var Actions = []string{ActionCreate, ActionEnable, ActionDisable, ActionDelete, ActionGrant, ActionRevoke, ActionImport}

// ActionOf is the action of a connector operation.
func ActionOf(op connectors.Operation) string {
	switch op {
	case connectors.OpCreateAccount:
		return ActionCreate
	case connectors.OpEnableAccount:
		return ActionEnable
	case connectors.OpDisableAccount:
		return ActionDisable
	case connectors.OpDeleteAccount:
		return ActionDelete
	case connectors.OpGrant:
		return ActionGrant
	case connectors.OpRevoke:
		return ActionRevoke
	case connectors.OpImport:
		return ActionImport
	}
	return string(op)
}

// Entry is one attempt of an operation on a target system.
type Entry struct {
	ID         string    `gorm:"primaryKey" json:"id"`
	At         time.Time `json:"at"`
	DurationMS int64     `json:"duration_ms"`

	ConnectorID   *string `json:"connector_id"`
	ConnectorName string  `json:"connector_name"`
	ConnectorType string  `json:"connector_type"`
	Action        string  `json:"action"`
	Operation     string  `json:"operation"`
	Kind          string  `json:"kind"`

	// The source: the portal's identity.
	IdentityID    *string `json:"identity_id"`
	IdentityName  string  `json:"identity_name"`
	IdentityEmail string  `json:"identity_email"`
	// The target: the account on the system, and the group or role.
	TargetUsername        string `json:"target_username"`
	TargetExternalID      string `json:"target_external_id"`
	EntitlementName       string `json:"entitlement_name,omitempty"`
	EntitlementExternalID string `json:"entitlement_external_id,omitempty"`

	// What caused it: who, the run, its task and the job.
	InitiatedBy string  `json:"initiated_by"`
	Trigger     string  `json:"trigger"`
	InstanceID  *string `json:"instance_id"`
	TaskID      *string `json:"task_id"`
	TaskName    string  `json:"task_name,omitempty"`
	JobID       *string `json:"job_id"`
	JobSeq      int     `json:"job_number"`
	Attempt     int     `json:"attempt"`

	Status       string `json:"status"`
	ErrorClass   string `json:"error_class,omitempty"`
	ErrorCode    string `json:"error_code,omitempty"`
	ErrorMessage string `json:"error_message,omitempty"`
	RequestID    string `json:"request_id,omitempty"`
	Message      string `json:"message"`

	StepsJSON   string                      `gorm:"column:steps" json:"-"`
	ChangesJSON string                      `gorm:"column:changes" json:"-"`
	Steps       []connectors.Step           `gorm:"-" json:"steps"`
	Changes     []connectors.PropertyChange `gorm:"-" json:"modified_properties"`
	// Recommendation is what to do about the error, for the common ones.
	Recommendation string `gorm:"-" json:"recommendation,omitempty"`

	Search string `json:"-"`
}

// TableName is the table of the provisioning log.
func (Entry) TableName() string { return "provisioning_logs" }

// Prepare fills what an entry stores derived from its fields: the JSON of
// its steps and changes, and its search column. InsertTx calls it.
func (e *Entry) Prepare() {
	e.StepsJSON, e.ChangesJSON = "[]", "[]"
	if len(e.Steps) > 0 {
		if b, err := json.Marshal(e.Steps); err == nil {
			e.StepsJSON = string(b)
		}
	}
	if len(e.Changes) > 0 {
		if b, err := json.Marshal(e.Changes); err == nil {
			e.ChangesJSON = string(b)
		}
	}
	e.Search = SearchText(e.IdentityName, e.IdentityEmail, e.TargetUsername, e.TargetExternalID,
		e.EntitlementName, e.EntitlementExternalID)
}

// decode reads back what Prepare stored.
func (e *Entry) decode() {
	if e.StepsJSON != "" && e.StepsJSON != "[]" {
		_ = json.Unmarshal([]byte(e.StepsJSON), &e.Steps)
	}
	if e.ChangesJSON != "" && e.ChangesJSON != "[]" {
		_ = json.Unmarshal([]byte(e.ChangesJSON), &e.Changes)
	}
	e.Recommendation = Recommend(e.ErrorClass, e.ErrorCode, e.ErrorMessage)
}

// SearchText is the search column of identifiers: lowercased, one per
// line, so that a search term never matches across two of them.
func SearchText(ids ...string) string {
	var b strings.Builder
	for _, id := range ids {
		if id == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(strings.ToLower(id))
	}
	return b.String()
}

// Failure is how an error is logged: its class, the system's code and the
// message.
func Failure(err error) (class, code, message string) {
	if err == nil {
		return "", "", ""
	}
	return ClassOf(err), connectors.CodeOf(err), err.Error()
}

// authorizationCodes are codes that say the service account may not do it.
var authorizationCodes = map[string]bool{
	"LDAP 8": true, "LDAP 13": true, "LDAP 48": true, "LDAP 49": true, "LDAP 50": true,
	"HTTP 401": true, "HTTP 403": true, "Authorization_RequestDenied": true, "InvalidAuthenticationToken": true,
}

// configurationCodes are codes that say the connector's settings are wrong.
var configurationCodes = map[string]bool{
	"TLS": true, "LDAP 7": true, "LDAP 17": true, "LDAP 34": true, "LDAP 65": true,
}

// ClassOf is the error class of err: authorization and configuration
// problems by their code (or the words of a connector that cannot be
// used), else permanent or transient as the connector classified it.
func ClassOf(err error) string {
	code := connectors.CodeOf(err)
	switch {
	case authorizationCodes[code]:
		return ClassAuthorization
	case configurationCodes[code], errors.Is(err, connectors.ErrNotFound):
		return ClassConfiguration
	}
	msg := err.Error()
	for _, w := range []string{"is disabled; the job waits", "no longer exists", "no importer configured", "cannot be imported"} {
		if strings.Contains(msg, w) {
			return ClassConfiguration
		}
	}
	if connectors.IsPermanent(err) {
		return ClassPermanent
	}
	return ClassTransient
}

// advice is the recommended action for common error codes.
var advice = map[string]string{
	"LDAP 32":  "The object is not in the directory: check that the account or group still exists (an import refreshes the portal's view), and the connector's base DN.",
	"LDAP 49":  "The directory refused the service account's bind: check the bind DN and password on the connector's page, and whether the account is locked or expired.",
	"LDAP 50":  "The service account may not change this object: grant it write access to the users and groups the connector manages.",
	"LDAP 8":   "The directory wants a protected connection: use LDAPS or StartTLS on the connector.",
	"LDAP 13":  "The directory wants a protected connection: use LDAPS or StartTLS on the connector.",
	"LDAP 19":  "The directory's schema or policy refused the value (a password policy, a size limit): change the value or the policy.",
	"LDAP 20":  "The value is already there: nothing to do; the next attempt finds no change.",
	"LDAP 34":  "A DN in the connector's settings or the entitlement is not valid: correct its spelling.",
	"LDAP 53":  "The directory refused the operation (such as a password that does not meet its policy): read the directory's message.",
	"LDAP 65":  "The object lacks an attribute its object class needs: add it to the connector's attribute mapping.",
	"LDAP 68":  "An object with this name exists already: link the existing account (run an import) or choose another username.",
	"TLS":      "The system's certificate is not trusted: add its CA certificate to the connector, or correct the host name.",
	"HTTP 401": "The system refused the connector's credentials: renew the client secret or certificate on the connector's page.",
	"HTTP 403": "The connector's application lacks a permission: grant it the API permissions the connector's page lists, with admin consent.",
	"HTTP 404": "The object is gone from the system: run an import to refresh the portal's view.",
	"HTTP 409": "The object exists already on the system: run an import to link it.",
	"HTTP 429": "The system is throttling: the job waits as asked and retries; lower the workers if it persists.",

	"Authorization_RequestDenied": "The connector's application lacks a permission: grant it the API permissions the connector's page lists, with admin consent.",
	"Request_ResourceNotFound":    "The object is gone from the system: run an import to refresh the portal's view.",
}

// classAdvice is the recommended action by error class when the code has
// none of its own.
var classAdvice = map[string]string{
	ClassTransient:     "The system did not answer or was busy: the job retries with backoff. If it keeps failing, check the connector's health on its page.",
	ClassPermanent:     "Retrying does not help: correct the input, the entitlement or the account on the system, then retry the job from the Connector Jobs page.",
	ClassConfiguration: "The connector cannot be used as set: check its settings and secrets on its page, and that it is enabled.",
	ClassAuthorization: "The service account lacks the rights or was refused: check its credentials and permissions on the system.",
}

// Recommend is the recommended action for an error, or "".
func Recommend(class, code, message string) string {
	if class == "" {
		return ""
	}
	if a, ok := advice[code]; ok {
		return a
	}
	return classAdvice[class]
}
