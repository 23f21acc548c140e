package protocol

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// leaseIDBytes is the size of a lease id's random part: 128 bits, as
// CONTRACT §5 asks, too many to guess or to try.
const leaseIDBytes = 16

// NewLeaseID makes a lease id: 16 bytes from crypto/rand, written as 32
// lowercase hex digits. The server makes one per lease grant and sends it
// once, in the grant answer; it keeps only its LeaseKey. The id is the
// lease: whoever has it may renew and release the lease, so it is never
// logged nor shown (LeaseFingerprint is what people see).
func NewLeaseID() (string, error) {
	var b [leaseIDBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("cannot make a lease id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// ValidLeaseID reports whether id is written as NewLeaseID writes one: 32
// lowercase hex digits, nothing else. ParseRequest refuses any other lease
// value, and ParseReply any other lease in an answer.
func ValidLeaseID(id string) bool {
	if len(id) != 2*leaseIDBytes {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// LeaseKey is what a server keeps of a lease id: the SHA-256 of its bytes.
// A lease table, its state files and its logs hold keys, never ids, so that
// reading them does not give the power to renew or release a lease; the
// id's 128 random bits make the key as hard to turn back as to guess.
func LeaseKey(id string) [32]byte {
	return sha256.Sum256([]byte(id))
}

// LeaseFingerprint is how people and logs name a lease: the first 4 bytes
// of its key as 8 lowercase hex digits ("lease" in a holders answer,
// tnl-stats). It tells leases apart; it does not give the id away.
func LeaseFingerprint(key [32]byte) string {
	return hex.EncodeToString(key[:4])
}
