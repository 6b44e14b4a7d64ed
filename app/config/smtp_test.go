package config

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSMTPSettings(t *testing.T) {
	c, err := Load("t", nil, env(nil), io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTP != nil || c.SMTPRetryFor != 24*time.Hour || c.RedactedSMTP() != "none" {
		t.Errorf("defaults: smtp %+v retry %s", c.SMTP, c.SMTPRetryFor)
	}
	c, err = Load("t", []string{"--smtp-insecure-skip-verify", "--smtp-timeout", "3s"}, env(map[string]string{
		"PROVISOR_SMTP_URL":  "smtp://mailer:p%40ss@mail.example.com:2525?tls=starttls",
		"PROVISOR_SMTP_FROM": "Provisor <provisor@example.com>",
	}), io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := c.SMTP
	if s.Host != "mail.example.com" || s.Port != 2525 || s.Username != "mailer" || s.Password != "p@ss" || s.TLS != SMTPStartTLS ||
		!s.InsecureSkipVerify || s.Timeout != 3*time.Second || s.From != "Provisor <provisor@example.com>" {
		t.Errorf("smtp %+v", s)
	}
	if r := c.RedactedSMTP(); strings.Contains(r, "p@ss") || strings.Contains(r, "p%40ss") || !strings.Contains(r, "mailer:xxxxx@mail.example.com:2525") {
		t.Errorf("redacted %s", r)
	}
	for url, want := range map[string]string{
		"smtp://relay":               "starttls 587",
		"smtp://relay?tls=none":      "none 25",
		"smtp://relay?tls=tls":       "tls 465",
		"smtps://relay":              "tls 465",
		"smtp://relay:587":           "starttls 587",
		"smtp://relay?tls=STARTTLS":  "starttls 587",
		"smtp://relay:1025?tls=none": "none 1025",
	} {
		c, err := Load("t", nil, env(map[string]string{"PROVISOR_SMTP_URL": url, "PROVISOR_SMTP_FROM": "a@b.example"}), io.Discard, nil)
		if err != nil {
			t.Errorf("%s: %v", url, err)
			continue
		}
		if got := c.SMTP.TLS + " " + strconv.Itoa(c.SMTP.Port); got != want {
			t.Errorf("%s: %s, want %s", url, got, want)
		}
	}
}

// Each wrong part of the SMTP settings is named, and the password never
// appears in the message.
func TestInvalidSMTPSettingsAreNamed(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	from := "PROVISOR_SMTP_FROM"
	for _, c := range []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{"PROVISOR_SMTP_URL": "http://u:secretpw@host", from: "a@b.example"}, []string{"PROVISOR_SMTP_URL (--smtp-url)", `scheme "http"`}},
		{map[string]string{"PROVISOR_SMTP_URL": "smtp://u:secretpw@:587", from: "a@b.example"}, []string{"PROVISOR_SMTP_URL", "no host"}},
		{map[string]string{"PROVISOR_SMTP_URL": "smtp://u:secretpw@host:99999", from: "a@b.example"}, []string{"PROVISOR_SMTP_URL", `port "99999"`}},
		{map[string]string{"PROVISOR_SMTP_URL": "smtp://u:secretpw@host:abc", from: "a@b.example"}, []string{"PROVISOR_SMTP_URL", "not a URL"}},
		{map[string]string{"PROVISOR_SMTP_URL": "smtp://u:secretpw@host?tls=ssl", from: "a@b.example"}, []string{"PROVISOR_SMTP_URL", "tls=ssl", "not starttls, tls or none"}},
		{map[string]string{"PROVISOR_SMTP_URL": "smtps://u:secretpw@host?tls=starttls", from: "a@b.example"}, []string{"PROVISOR_SMTP_URL", "smtps:// always uses implicit TLS"}},
		{map[string]string{"PROVISOR_SMTP_URL": "smtp://u:secretpw@host?auth=plain", from: "a@b.example"}, []string{"PROVISOR_SMTP_URL", `unknown parameter "auth"`}},
		{map[string]string{"PROVISOR_SMTP_URL": "smtp://u:secretpw@host"}, []string{"PROVISOR_SMTP_FROM (--smtp-from)", "required"}},
		{map[string]string{"PROVISOR_SMTP_URL": "smtp://host", from: "not an address"}, []string{"PROVISOR_SMTP_FROM", "not an email address"}},
		{map[string]string{"PROVISOR_SMTP_URL": "smtp://host", from: "a@b.example", "PROVISOR_SMTP_CA_FILE": filepath.Join(dir, "missing.pem")}, []string{"PROVISOR_SMTP_CA_FILE (--smtp-ca-file)", "cannot read"}},
		{map[string]string{"PROVISOR_SMTP_URL": "smtp://host", from: "a@b.example", "PROVISOR_SMTP_CA_FILE": notPEM}, []string{"PROVISOR_SMTP_CA_FILE", "no PEM certificate"}},
		{map[string]string{"PROVISOR_SMTP_INSECURE_SKIP_VERIFY": "perhaps"}, []string{"PROVISOR_SMTP_INSECURE_SKIP_VERIFY"}},
		{map[string]string{"PROVISOR_SMTP_TIMEOUT": "0s"}, []string{"PROVISOR_SMTP_TIMEOUT"}},
		{map[string]string{"PROVISOR_SMTP_RETRY_FOR": "forever"}, []string{"PROVISOR_SMTP_RETRY_FOR"}},
	} {
		_, err := Load("t", nil, env(c.env), io.Discard, nil)
		if err == nil {
			t.Errorf("%v: no error", c.env)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: %q does not mention %q", c.env, err, w)
			}
		}
		if strings.Contains(err.Error(), "secretpw") {
			t.Errorf("%v: the password is in %q", c.env, err)
		}
	}
}
