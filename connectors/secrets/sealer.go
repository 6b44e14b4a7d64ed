package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
)

// Sealer encrypts connector secrets at rest with AES-256-GCM. The key is
// derived from the configured secret key with SHA-256; a version byte leads
// every sealed value so the scheme can change later.
type Sealer struct {
	aead cipher.AEAD
}

const sealVersion = 1

// NewSealer returns a sealer for key (at least 32 characters).
func NewSealer(key string) (*Sealer, error) {
	if len(key) < 32 {
		return nil, errors.New("connectors: secret key must be at least 32 characters")
	}
	sum := sha256.Sum256([]byte("provisor connector secrets\x00" + key))
	block, err := aes.NewCipher(sum[:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts secrets; nil or empty secrets seal to nil.
func (s *Sealer) Seal(secrets map[string]string) ([]byte, error) {
	if len(secrets) == 0 {
		return nil, nil
	}
	plain, err := json.Marshal(secrets)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := append([]byte{sealVersion}, nonce...)
	return s.aead.Seal(out, nonce, plain, []byte{sealVersion}), nil
}

// Open decrypts what Seal made.
func (s *Sealer) Open(sealed []byte) (map[string]string, error) {
	if len(sealed) == 0 {
		return map[string]string{}, nil
	}
	n := s.aead.NonceSize()
	if sealed[0] != sealVersion || len(sealed) < 1+n {
		return nil, errors.New("connectors: sealed secrets are damaged or of an unknown version")
	}
	plain, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], sealed[:1])
	if err != nil {
		return nil, fmt.Errorf("connectors: cannot decrypt secrets (was the secret key changed?): %w", err)
	}
	out := map[string]string{}
	if err := json.Unmarshal(plain, &out); err != nil {
		return nil, err
	}
	return out, nil
}
