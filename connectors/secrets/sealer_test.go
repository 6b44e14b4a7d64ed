package secrets

import (
	"bytes"
	"strings"
	"testing"
)

func TestSealerRoundTripAndTamper(t *testing.T) {
	s, err := NewSealer(strings.Repeat("a", 32))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := s.Seal(map[string]string{"bind_password": "hunter2-very-secret"})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("hunter2")) {
		t.Fatal("secret is stored in clear")
	}
	again, _ := s.Seal(map[string]string{"bind_password": "hunter2-very-secret"})
	if bytes.Equal(sealed, again) {
		t.Error("two seals of the same secret are equal: the nonce is not random")
	}
	got, err := s.Open(sealed)
	if err != nil || got["bind_password"] != "hunter2-very-secret" {
		t.Fatalf("open: %v %v", got, err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := s.Open(sealed); err == nil {
		t.Error("a tampered value opened")
	}
	other, _ := NewSealer(strings.Repeat("b", 32))
	if _, err := other.Open(again); err == nil || !strings.Contains(err.Error(), "secret key") {
		t.Errorf("another key: %v", err)
	}
	if _, err := NewSealer("short"); err == nil {
		t.Error("short key accepted")
	}
	if empty, _ := s.Seal(nil); empty != nil {
		t.Error("no secrets sealed to something")
	}
}
