package ldap

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"math/big"
	"unicode/utf16"
)

const (
	lowers  = "abcdefghijkmnopqrstuvwxyz"
	uppers  = "ABCDEFGHJKLMNPQRSTUVWXYZ"
	digits  = "23456789"
	symbols = "-_.!#%+=:@"
)

// generatePassword returns a random password of n characters with at least
// one lower case letter, upper case letter, digit and symbol, which meets
// the complexity rules of Active Directory and of common LDAP policies.
func generatePassword(n int) (string, error) {
	all := lowers + uppers + digits + symbols
	out := make([]byte, n)
	for i := range out {
		set := all
		if i < 4 {
			set = []string{lowers, uppers, digits, symbols}[i]
		}
		k, err := rand.Int(rand.Reader, big.NewInt(int64(len(set))))
		if err != nil {
			return "", err
		}
		out[i] = set[k.Int64()]
	}
	// Shuffle so the classes are not always in front.
	for i := len(out) - 1; i > 0; i-- {
		k, err := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		if err != nil {
			return "", err
		}
		j := k.Int64()
		out[i], out[j] = out[j], out[i]
	}
	return string(out), nil
}

// ssha hashes a password for userPassword the way OpenLDAP and 389 DS read
// it ({SSHA}: SHA-1 over password and salt, then base64 of digest and salt),
// so the cleartext never reaches the directory.
func ssha(password string) (string, error) {
	salt := make([]byte, 8)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	h := sha1.New()
	h.Write([]byte(password))
	h.Write(salt)
	return "{SSHA}" + base64.StdEncoding.EncodeToString(append(h.Sum(nil), salt...)), nil
}

// unicodePwd encodes a password as Active Directory's unicodePwd takes it:
// in double quotes, UTF-16 little endian.
func unicodePwd(password string) string {
	u := utf16.Encode([]rune(`"` + password + `"`))
	b := make([]byte, 2*len(u))
	for i, r := range u {
		b[2*i] = byte(r)
		b[2*i+1] = byte(r >> 8)
	}
	return string(b)
}
