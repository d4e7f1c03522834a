// Package secrets encrypts secrets at rest (HR tokens, lock PINs, CA keys, APNs keys)
// with AES-256-GCM. Every ciphertext names the key that sealed it, so keys rotate: add a
// new active key, keep the old ones for reading, re-seal at leisure.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Key is one AES-256 key and its id.
type Key struct {
	ID     string `json:"id"`
	Secret []byte `json:"secret"`
}

// Keyring holds the active key and older keys still needed to decrypt.
type Keyring struct {
	active string
	keys   map[string]cipher.AEAD
}

const version = "v1"

// ErrUnknownKey means a ciphertext was sealed by a key this keyring does not hold.
var ErrUnknownKey = errors.New("ciphertext sealed with an unknown key")

// New builds a keyring; the first key is the active one.
func New(keys ...Key) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("keyring needs at least one key")
	}
	kr := &Keyring{active: keys[0].ID, keys: map[string]cipher.AEAD{}}
	for _, k := range keys {
		if len(k.Secret) != 32 {
			return nil, fmt.Errorf("key %s: want 32 bytes, got %d", k.ID, len(k.Secret))
		}
		if k.ID == "" || strings.Contains(k.ID, ":") {
			return nil, fmt.Errorf("key id %q must be non-empty and contain no colon", k.ID)
		}
		block, err := aes.NewCipher(k.Secret)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		kr.keys[k.ID] = aead
	}
	return kr, nil
}

// NewKey generates a random key whose id is derived from its bytes.
func NewKey() Key {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	sum := sha256.Sum256(b)
	return Key{ID: "k" + hex.EncodeToString(sum[:4]), Secret: b}
}

// KeyIDs lists every key the keyring holds (sorted), so a backup can name the keys it needs.
func (k *Keyring) KeyIDs() []string {
	ids := make([]string, 0, len(k.keys))
	for id := range k.keys {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// ActiveKeyID names the key new ciphertexts use.
func (k *Keyring) ActiveKeyID() string { return k.active }

// Seal encrypts plaintext; aad binds it to its context (e.g. "org:<id>:hr_token") so a
// ciphertext copied to another row fails to open.
func (k *Keyring) Seal(plaintext []byte, aad string) (string, error) {
	aead := k.keys[k.active]
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	ct := aead.Seal(nonce, nonce, plaintext, []byte(aad))
	return version + ":" + k.active + ":" + base64.RawStdEncoding.EncodeToString(ct), nil
}

// Open decrypts a value made by Seal with the same aad.
func (k *Keyring) Open(sealed, aad string) ([]byte, error) {
	parts := strings.SplitN(sealed, ":", 3)
	if len(parts) != 3 || parts[0] != version {
		return nil, errors.New("malformed ciphertext")
	}
	aead, ok := k.keys[parts[1]]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownKey, parts[1])
	}
	raw, err := base64.RawStdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) < aead.NonceSize() {
		return nil, errors.New("malformed ciphertext")
	}
	pt, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(aad))
	if err != nil {
		return nil, fmt.Errorf("decrypt with key %s: %w", parts[1], err)
	}
	return pt, nil
}

// KeyID returns the id of the key that sealed a ciphertext (for rotation reports).
func KeyID(sealed string) string {
	parts := strings.SplitN(sealed, ":", 3)
	if len(parts) != 3 {
		return ""
	}
	return parts[1]
}

// keyFile is the on-disk form: the active key first.
type keyFile struct {
	Keys []Key `json:"keys"`
}

// LoadOrCreate reads the keyring file at path, creating it with one fresh key (mode 0600)
// when it does not exist. A file readable by others is refused rather than used.
func LoadOrCreate(path string) (*Keyring, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("create key directory: %w", err)
		}
		kf := keyFile{Keys: []Key{NewKey()}}
		b, _ = json.MarshalIndent(kf, "", "  ")
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create key file %s: %w", path, err)
		}
		if _, err := f.Write(b); err != nil {
			f.Close()
			return nil, fmt.Errorf("write key file %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
		return New(kf.Keys...)
	}
	if err != nil {
		return nil, fmt.Errorf("read key file %s: %w", path, err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key file %s has mode %v: it must not be readable by group or others (chmod 600)", path, fi.Mode().Perm())
	}
	var kf keyFile
	if err := json.Unmarshal(b, &kf); err != nil {
		return nil, fmt.Errorf("parse key file %s: %w", path, err)
	}
	return New(kf.Keys...)
}

// Rotate adds a fresh active key to the file at path, keeping the old ones for reading.
func Rotate(path string) (Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Key{}, fmt.Errorf("read key file %s: %w", path, err)
	}
	var kf keyFile
	if err := json.Unmarshal(b, &kf); err != nil {
		return Key{}, fmt.Errorf("parse key file %s: %w", path, err)
	}
	k := NewKey()
	kf.Keys = append([]Key{k}, kf.Keys...)
	out, _ := json.MarshalIndent(kf, "", "  ")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return Key{}, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return Key{}, err
	}
	return k, nil
}
