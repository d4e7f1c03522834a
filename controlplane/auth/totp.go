package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

const (
	totpPeriod = 30
	// totpSkew accepts the previous and next 30-second step too (clock drift).
	totpSkew          = 1
	recoveryCodeCount = 10
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Skew: 0, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// matchTOTP returns the step code is valid for at now (within the skew), or 0. The caller
// records the step so the same code cannot be used twice.
func matchTOTP(secret, code string, now time.Time) int64 {
	if len(code) != 6 {
		return 0
	}
	cur := now.Unix() / totpPeriod
	var found int64
	for off := int64(-totpSkew); off <= totpSkew; off++ {
		step := cur + off
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*totpPeriod, 0), totpOpts)
		if err != nil {
			return 0
		}
		// Compare every candidate, so timing does not tell which step matched.
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			found = step
		}
	}
	return found
}

// normalizeCode strips the spaces and dashes people type into codes.
func normalizeCode(s string) string {
	return strings.ToLower(strings.NewReplacer(" ", "", "-", "", "\t", "").Replace(strings.TrimSpace(s)))
}

var codeAlphabet = base32.NewEncoding("abcdefghijkmnpqrstuvwxyz23456789").WithPadding(base32.NoPadding)

// newRecoveryCodes returns ten one-use codes (50 random bits each, shown as xxxxx-xxxxx)
// and their hashes for storage.
func newRecoveryCodes(userID string) (codes, hashes []string) {
	for range recoveryCodeCount {
		b := make([]byte, 7)
		if _, err := rand.Read(b); err != nil {
			panic(err) // crypto/rand does not fail on supported platforms
		}
		c := codeAlphabet.EncodeToString(b)[:10]
		codes = append(codes, c[:5]+"-"+c[5:])
		hashes = append(hashes, hashRecoveryCode(userID, c))
	}
	return codes, hashes
}

// hashRecoveryCode is SHA-256 salted with the user id: the codes carry 50 random bits and
// sign-in is rate limited and locked out, so a slow hash would add little.
func hashRecoveryCode(userID, normalized string) string {
	h := sha256.Sum256([]byte("lanyard-recovery:" + userID + ":" + normalized))
	return hex.EncodeToString(h[:])
}
