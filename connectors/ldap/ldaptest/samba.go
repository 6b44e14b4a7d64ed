package ldaptest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ldapv3 "github.com/go-ldap/ldap/v3"
)

// The domain every Samba DC of these tests serves.
const (
	ADRealm         = "EXAMPLE.TEST"
	ADBaseDN        = "DC=example,DC=test"
	ADUsersDN       = "CN=Users,DC=example,DC=test"
	ADAdminDN       = "CN=Administrator,CN=Users,DC=example,DC=test"
	ADAdminPassword = "Adm1n-Passw0rd!"
)

// Samba is a running Samba Active Directory domain controller serving LDAPS
// on Addr:636 (Samba's ports are fixed; each DC takes a loopback address of
// its own, 127.0.0.2 and up, held with a lock file while it runs).
type Samba struct {
	Addr string
	// URL is ldaps://Addr:636.
	URL string
	// CA signed the DC's certificate (for Addr).
	CA *CA

	dir  string
	lock *os.File
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
}

var template struct {
	once sync.Once
	dir  string
	err  error
}

// provision makes one provisioned domain per test process (about 6 s), which
// every DC of the process copies. TDB_NO_FSYNC spares the disk syncs that
// tests do not need (it takes provisioning from ~50 s to ~6 s).
func provision() (string, error) {
	template.once.Do(func() {
		for _, bin := range []string{"/usr/bin/samba-tool", "/usr/sbin/samba"} {
			if _, err := os.Stat(bin); err != nil {
				template.err = fmt.Errorf("%s is missing: install it with 'DEBIAN_FRONTEND=noninteractive apt-get install -y samba samba-ad-dc samba-ad-provision winbind'", bin)
				return
			}
		}
		if os.Geteuid() != 0 {
			template.err = errors.New("a Samba DC needs root (it binds ports 389 and 636)")
			return
		}
		dir, err := os.MkdirTemp("", "psmbt")
		if err != nil {
			template.err = err
			return
		}
		args := []string{"domain", "provision", "--targetdir=" + dir, "--use-rfc2307", "--dns-backend=NONE",
			"--server-role=dc", "--realm=" + ADRealm, "--domain=EXAMPLE", "--host-name=dc1",
			"--adminpass=" + ADAdminPassword,
			"--option=interfaces=127.0.0.254/8", "--option=bind interfaces only=yes", "--option=server services=ldap",
			"--option=pid directory=" + dir + "/run", "--option=log file=" + dir + "/log.%m",
			"--option=winbindd socket directory=" + dir + "/wb", "--option=ntp signd socket directory=" + dir + "/ntp"}
		cmd := exec.Command("/usr/bin/samba-tool", args...)
		cmd.Env = append(os.Environ(), "TDB_NO_FSYNC=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			_ = os.RemoveAll(dir)
			template.err = fmt.Errorf("samba-tool domain provision: %v: %s", err, out)
			return
		}
		template.dir = dir
	})
	return template.dir, template.err
}

// RemoveTemplate deletes the provisioned domain the DCs of this process
// were copied from. Call it from TestMain after the tests ran.
func RemoveTemplate() {
	if template.dir != "" {
		_ = os.RemoveAll(template.dir)
	}
}

// StartSamba starts a domain controller for t and stops it when the test ends.
func StartSamba(t testing.TB) *Samba {
	t.Helper()
	s, err := NewSamba()
	if err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// NewSamba starts a domain controller. Stop it with Close.
func NewSamba() (*Samba, error) {
	tmpl, err := provision()
	if err != nil {
		return nil, err
	}
	addr, lock, err := claimAddress()
	if err != nil {
		return nil, err
	}
	s := &Samba{Addr: addr, URL: "ldaps://" + addr + ":636", lock: lock}
	fail := func(err error) (*Samba, error) {
		s.Close()
		return nil, err
	}
	if s.dir, err = os.MkdirTemp("", "psmb"); err != nil {
		return fail(err)
	}
	if out, err := exec.Command("cp", "-a", tmpl+"/.", s.dir).CombinedOutput(); err != nil {
		return fail(fmt.Errorf("copy the provisioned domain: %v: %s", err, out))
	}
	if s.CA, err = NewCA("Provisor test CA"); err != nil {
		return fail(err)
	}
	certPEM, keyPEM, err := s.CA.Issue(addr, "dc1.example.test")
	if err != nil {
		return fail(err)
	}
	tlsDir := filepath.Join(s.dir, "testtls")
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		return fail(err)
	}
	for name, body := range map[string]string{"ca.pem": s.CA.CertPEM, "cert.pem": certPEM, "key.pem": keyPEM} {
		if err := os.WriteFile(filepath.Join(tlsDir, name), []byte(body), 0o600); err != nil {
			return fail(err)
		}
	}
	confPath := filepath.Join(s.dir, "etc", "smb.conf")
	conf, err := os.ReadFile(confPath)
	if err != nil {
		return fail(err)
	}
	// smb.conf is the only file with absolute paths.
	text := strings.ReplaceAll(string(conf), tmpl, s.dir)
	text = regexp.MustCompile(`(?m)^\s*interfaces = .*$`).ReplaceAllString(text, "\tinterfaces = "+addr+"/8")
	text = strings.Replace(text, "[global]\n", "[global]\n\ttls enabled = yes\n\ttls keyfile = "+tlsDir+"/key.pem\n\ttls certfile = "+
		tlsDir+"/cert.pem\n\ttls cafile = "+tlsDir+"/ca.pem\n", 1)
	if err := os.WriteFile(confPath, []byte(text), 0o644); err != nil {
		return fail(err)
	}
	if err := s.start(confPath); err != nil {
		return fail(err)
	}
	return s, nil
}

// claimAddress takes the first loopback address from 127.0.0.2 that no
// other test process holds (a lock file each) and on which nothing listens.
func claimAddress() (string, *os.File, error) {
	for n := 2; n < 254; n++ {
		addr := fmt.Sprintf("127.0.0.%d", n)
		f, err := os.OpenFile(filepath.Join(os.TempDir(), "provisor-samba-"+addr+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return "", nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		if c, err := net.DialTimeout("tcp", addr+":636", 200*time.Millisecond); err == nil {
			c.Close()
			f.Close()
			continue
		}
		return addr, f, nil
	}
	return "", nil, errors.New("no free loopback address for a Samba DC")
}

func (s *Samba) start(conf string) error {
	cmd := exec.Command("/usr/sbin/samba", "-i", "-M", "single", "-s", conf)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Env = append(os.Environ(), "TDB_NO_FSYNC=1")
	s.log = &syncBuffer{}
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start samba: %w", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := s.dial()
		if err == nil {
			_, err = c.Search(ldapv3.NewSearchRequest(ADBaseDN, ldapv3.ScopeBaseObject, ldapv3.NeverDerefAliases, 1, 0, false,
				"(objectClass=*)", []string{"1.1"}, nil))
			c.Close()
			if err == nil {
				return nil
			}
		}
		select {
		case <-s.done:
			return fmt.Errorf("samba exited at start: %s", s.log.String())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("samba did not answer on %s within 60s: %v; log: %s", s.URL, err, s.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *Samba) dial() (*ldapv3.Conn, error) {
	c, err := ldapv3.DialURL(s.URL, ldapv3.DialWithTLSConfig(s.TLSConfig()))
	if err != nil {
		return nil, err
	}
	c.SetTimeout(30 * time.Second)
	if err := c.Bind(ADAdminDN, ADAdminPassword); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close stops the DC and deletes its folder.
func (s *Samba) Close() {
	if s.cmd != nil {
		_ = s.cmd.Process.Kill()
		<-s.done
		s.cmd = nil
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
		s.dir = ""
	}
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
}

// Conn returns an LDAPS connection bound as the domain's Administrator.
func (s *Samba) Conn(t testing.TB) *ldapv3.Conn {
	t.Helper()
	c, err := s.dial()
	if err != nil {
		t.Fatalf("ldaptest: samba: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TLSConfig trusts the DC's CA.
func (s *Samba) TLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(s.CA.CertPEM))
	return &tls.Config{RootCAs: pool, ServerName: s.Addr, MinVersion: tls.VersionTLS12}
}

// Log returns what samba wrote so far.
func (s *Samba) Log() string { return s.log.String() }

// Settings returns "ad" connector settings (JSON) for this DC with its CA,
// the given user and group folders, and the given extra fields.
func (s *Samba) Settings(userBase, groupBase, extra string) string {
	out := fmt.Sprintf(`{"urls":[%q],"ca_cert":%q,"bind_dn":%q,"user_base_dn":%q,"group_base_dn":%q`,
		s.URL, s.CA.CertPEM, ADAdminDN, userBase, groupBase)
	if extra = strings.TrimSpace(extra); extra != "" {
		out += "," + extra
	}
	return out + "}"
}
