package ldaptest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ldapv3 "github.com/go-ldap/ldap/v3"
)

// The directory every slapd of these tests serves.
const (
	BaseDN        = "dc=example,dc=test"
	AdminDN       = "cn=admin,dc=example,dc=test"
	AdminPassword = "admin-secret"
	PeopleDN      = "ou=people,dc=example,dc=test"
	GroupsDN      = "ou=groups,dc=example,dc=test"
)

// Slapd is a running OpenLDAP server.
type Slapd struct {
	// URL is ldap://127.0.0.1:Port, TLSURL ldaps://127.0.0.1:TLSPort.
	URL, TLSURL   string
	Port, TLSPort int
	// CA signed the server's certificate (for 127.0.0.1).
	CA *CA

	dir  string
	conf string

	mu   sync.Mutex
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
}

// SlapdOptions adjust StartSlapd. A nil *SlapdOptions means defaults.
type SlapdOptions struct {
	// LDIF is loaded after the base entries (the suffix, ou=people,
	// ou=groups, ou=policies and the default password policy).
	LDIF string
	// NoMemberOf leaves out the memberof overlay: no memberOf attributes,
	// and nothing removes a deleted entry from the groups that list it, as
	// in a directory without referential integrity.
	NoMemberOf bool
}

const baseLDIF = `dn: dc=example,dc=test
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,dc=example,dc=test
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=test
objectClass: organizationalUnit
ou: groups

dn: ou=policies,dc=example,dc=test
objectClass: organizationalUnit
ou: policies

dn: cn=default,ou=policies,dc=example,dc=test
objectClass: person
objectClass: pwdPolicy
cn: default
sn: default
pwdAttribute: userPassword
pwdLockout: TRUE
pwdMaxFailure: 0
`

// StartSlapd starts slapd in t's temporary folder and stops it when the
// test ends.
func StartSlapd(t testing.TB, opts *SlapdOptions) *Slapd {
	t.Helper()
	s, err := NewSlapd(t.TempDir(), opts)
	if err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// NewSlapd starts slapd with its configuration and data in dir. Stop it
// with Stop.
func NewSlapd(dir string, opts *SlapdOptions) (*Slapd, error) {
	if opts == nil {
		opts = &SlapdOptions{}
	}
	for _, bin := range []string{"/usr/sbin/slapd", "/usr/sbin/slapadd"} {
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("%s is missing: install it with 'DEBIAN_FRONTEND=noninteractive apt-get install -y slapd ldap-utils'", bin)
		}
	}
	ca, err := NewCA("Provisor test CA")
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := ca.Issue("127.0.0.1", "localhost")
	if err != nil {
		return nil, err
	}
	s := &Slapd{CA: ca, dir: dir, conf: filepath.Join(dir, "slapd.conf")}
	files := map[string]string{"ca.pem": ca.CertPEM, "cert.pem": certPEM, "key.pem": keyPEM,
		"base.ldif": baseLDIF + "\n" + opts.LDIF}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "db"), 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(s.conf, []byte(slapdConf(dir, !opts.NoMemberOf)), 0o600); err != nil {
		return nil, err
	}
	if out, err := exec.Command("/usr/sbin/slapadd", "-q", "-f", s.conf, "-l", filepath.Join(dir, "base.ldif")).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("slapadd: %v: %s", err, out)
	}
	// A free port can be taken between the probe and slapd's bind: try again.
	for attempt := 0; ; attempt++ {
		s.Port, s.TLSPort = freePort(), freePort()
		s.URL = fmt.Sprintf("ldap://127.0.0.1:%d", s.Port)
		s.TLSURL = fmt.Sprintf("ldaps://127.0.0.1:%d", s.TLSPort)
		err := s.start()
		if err == nil {
			return s, nil
		}
		if attempt == 3 {
			return nil, err
		}
	}
}

func slapdConf(dir string, memberOf bool) string {
	overlays := "overlay memberof\nmemberof-refint TRUE\n"
	if !memberOf {
		overlays = ""
	}
	return fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
moduleload ppolicy
pidfile %[1]s/slapd.pid
argsfile %[1]s/slapd.args
TLSCACertificateFile %[1]s/ca.pem
TLSCertificateFile %[1]s/cert.pem
TLSCertificateKeyFile %[1]s/key.pem

database mdb
suffix "%[2]s"
rootdn "%[3]s"
rootpw %[4]s
directory %[1]s/db
maxsize 1073741824
dbnosync
lastmod on
index objectClass eq
index uid eq
index cn eq
index member eq
index uniqueMember eq
index memberOf eq
index entryCSN eq
%[5]soverlay ppolicy
ppolicy_default "cn=default,ou=policies,%[2]s"
ppolicy_use_lockout
`, dir, BaseDN, AdminDN, AdminPassword, overlays)
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Start starts slapd again after Stop, on the same ports with the same data.
func (s *Slapd) Start() error { return s.start() }

func (s *Slapd) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("slapd is running")
	}
	cmd := exec.Command("/usr/sbin/slapd", "-f", s.conf, "-h", s.URL+"/ "+s.TLSURL+"/", "-d", "0")
	// A test binary that dies (a timeout) takes its server with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start slapd: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := ldapv3.DialURL(s.URL)
		if err == nil {
			err = c.Bind(AdminDN, AdminPassword)
			c.Close()
			if err == nil {
				s.cmd, s.log, s.done = cmd, log, done
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("slapd exited at start: %s", log.String())
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("slapd did not answer on %s within 15s: %v; log: %s", s.URL, err, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills slapd and waits for it to exit. The data stays for Start.
func (s *Slapd) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Conn returns a connection bound as the directory manager.
func (s *Slapd) Conn(t testing.TB) *ldapv3.Conn {
	t.Helper()
	c, err := ldapv3.DialURL(s.URL)
	if err != nil {
		t.Fatalf("ldaptest: dial %s: %v", s.URL, err)
	}
	if err := c.Bind(AdminDN, AdminPassword); err != nil {
		c.Close()
		t.Fatalf("ldaptest: bind: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TLSConfig trusts the server's CA.
func (s *Slapd) TLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(s.CA.CertPEM))
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// Log returns what slapd wrote so far.
func (s *Slapd) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log == nil {
		return ""
	}
	return strings.TrimSpace(s.log.String())
}

// syncBuffer is a buffer a process writes while a test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Settings returns connector settings (JSON) for this server: the plain
// URL, the people and groups folders, and the given extra fields.
func (s *Slapd) Settings(extra string) string {
	out := fmt.Sprintf(`{"urls":[%q],"bind_dn":%q,"user_base_dn":%q,"group_base_dn":%q`, s.URL, AdminDN, PeopleDN, GroupsDN)
	if extra = strings.TrimSpace(extra); extra != "" {
		out += "," + extra
	}
	return out + "}"
}
