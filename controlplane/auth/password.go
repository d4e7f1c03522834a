package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are argon2id's cost parameters. They are written into every hash (PHC
// string), so raising them later leaves existing hashes verifiable.
type Argon2Params struct {
	Time    uint32
	MemoryK uint32 // KiB
	Threads uint8
}

// DefaultArgon2 is OWASP's minimum for argon2id (t=2, m=19 MiB, p=1): about 50 ms a hash here.
var DefaultArgon2 = Argon2Params{Time: 2, MemoryK: 19 * 1024, Threads: 1}

const (
	saltLen = 16
	keyLen  = 32
	// MinPasswordLen is the password policy's minimum length (in characters).
	MinPasswordLen = 12
	maxPasswordLen = 1024
)

var b64 = base64.RawStdEncoding

// HashPassword returns the argon2id PHC string of password.
func HashPassword(password string, p Argon2Params) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryK, p.Threads, keyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryK, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

var errBadHash = errors.New("malformed password hash")

// VerifyPassword checks password against a PHC string made by HashPassword, with the
// parameters the string names.
func VerifyPassword(phc, password string) (bool, error) {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errBadHash
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false, errBadHash
	}
	var p Argon2Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryK, &p.Time, &p.Threads); err != nil ||
		p.Time == 0 || p.Threads == 0 || p.MemoryK == 0 || p.MemoryK > 1<<22 {
		return false, errBadHash
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, errBadHash
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false, errBadHash
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryK, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// CheckPasswordPolicy enforces the password policy: at least 12 characters, not the email.
func CheckPasswordPolicy(password, email string) error {
	n := utf8.RuneCountInString(password)
	if n < MinPasswordLen || len(password) > maxPasswordLen {
		return ErrWeakPassword
	}
	if email != "" && strings.EqualFold(strings.TrimSpace(password), strings.TrimSpace(email)) {
		return ErrWeakPassword
	}
	return nil
}
