package ldap

import "github.com/provisor/provisor/connectors"

// settingsHelp labels and explains the settings in the portal's form.
var settingsHelp = map[string]connectors.FieldHelp{
	"urls": {Label: "Server URLs", Help: "One a line, tried in order: ldaps://dc1.example.com:636 or ldap://host:389.",
		Placeholder: "ldaps://dc1.example.com:636", Required: true},
	"start_tls":                  {Label: "Use StartTLS", Help: "Upgrade ldap:// connections to TLS before the bind."},
	"ca_cert":                    {Label: "CA certificate (PEM)", Help: "The certificate that signs the servers' certificates; empty trusts the system's roots.", Multiline: true},
	"insecure_skip_verify":       {Label: "Skip certificate verification", Help: "Accepts any server certificate: for tests only."},
	"tls_server_name":            {Label: "TLS server name", Help: "The name the server certificate carries, when it is not the URL's host."},
	"bind_dn":                    {Label: "Bind DN", Help: "The service account; its password is the secret bind_password. Empty binds anonymously.", Placeholder: "cn=provisor,ou=service,dc=example,dc=com"},
	"user_base_dn":               {Label: "User base DN", Help: "Where accounts are searched.", Placeholder: "ou=people,dc=example,dc=com", Required: true},
	"user_filter":                {Help: "An LDAP filter that accounts match, such as (objectClass=inetOrgPerson)."},
	"group_base_dn":              {Label: "Group base DN", Help: "Where groups are searched.", Placeholder: "ou=groups,dc=example,dc=com", Required: true},
	"group_filter":               {Help: "An LDAP filter that groups match."},
	"user_dn_pattern":            {Label: "DN of a new account", Help: "Placeholders {username}, {display_name}, {email}.", Placeholder: "uid={username},ou=people,dc=example,dc=com"},
	"user_object_classes":        {Label: "Object classes of a new account", Help: "One a line."},
	"user_attributes":            {Label: "Attributes of a new account", Help: "name=value, one a line, with the placeholders of the DN pattern."},
	"group_member_attribute":     {Label: "Group member attribute", Help: "member (groupOfNames, AD groups) or uniqueMember (groupOfUniqueNames)."},
	"attributes.username":        {Label: "Username attribute", Placeholder: "uid"},
	"attributes.display_name":    {Label: "Display name attribute", Placeholder: "cn"},
	"attributes.email":           {Label: "Email attribute", Placeholder: "mail"},
	"attributes.correlation":     {Label: "Correlation attribute", Help: "Links an imported account to an identity; the username attribute by default."},
	"attributes.manager":         {Label: "Manager attribute", Help: "Holds the manager's DN; none reads no manager.", Placeholder: "manager"},
	"initial_password":           {Help: "generate (random, never shown) or none.", Placeholder: "generate"},
	"password_length":            {Help: "Length of generated passwords, 8 to 256."},
	"upn_suffix":                 {Label: "UPN suffix", Help: "Active Directory: userPrincipalName is username@suffix; by default the DNS name of the user base."},
	"connect_timeout":            {Help: "Dialling one URL, such as 5s."},
	"request_timeout":            {Help: "One operation, such as 30s."},
	"page_size":                  {Help: "Entries a page of a paged search, 1 to 10000."},
	"pool_size":                  {Help: "Connections kept at most, 1 to 64."},
	"delta_overlap":              {Help: "Read again at the start of every delta import, for clock differences, such as 2m."},
	"deletion_threshold_percent": {Label: "Deletion threshold (%)", Help: "An import that would delete or lock more than this share of accounts waits for approval. Default 10; 100 never stops."},
	"login_enabled":              {Label: "Sign-in with the directory password", Help: "People sign in to the portal with their directory password."},
	"admin_group_dn":             {Label: "Admin group DN", Help: "Members sign in as admins."},
}
