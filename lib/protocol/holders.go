package protocol

import "time"

// HoldersDoc is the JSON document of a holders answer (and of tnl-stats
// --json). Field names are part of the protocol: add, never rename.
type HoldersDoc struct {
	Locks     []LockDoc `json:"locks"`
	Truncated bool      `json:"truncated,omitempty"` // more names than listed
}

// LockDoc is one name with its holders and its waiters in queue order.
type LockDoc struct {
	Name    string     `json:"name"`
	Mode    string     `json:"mode"`  // "exclusive" or "shared"
	Limit   int        `json:"limit"` // semaphore size; 1 for a plain lock
	Token   uint64     `json:"token"` // the latest fencing token granted
	Holders []PartyDoc `json:"holders"`
	Waiters []PartyDoc `json:"waiters"`
}

// PartyDoc is a holder or a waiter.
type PartyDoc struct {
	ClientID string    `json:"client_id"`
	Host     string    `json:"host"`
	PID      int       `json:"pid"`
	Addr     string    `json:"addr"`
	Mode     string    `json:"mode"`
	Since    time.Time `json:"since"` // granted, or queued for a waiter
	Token    uint64    `json:"token,omitempty"`
}
