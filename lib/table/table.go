// Package table is the seam between tnl's server and its lock table: the
// Table interface, in the server's terms, and the types that cross it.
//
// lib/server speaks the wire and owns connections, sessions and wait
// timers; a Table keeps the locks. The embedded table (lib/lockd) is one
// implementation; a backend that keeps the table elsewhere (etcd) is
// another. Every implementation passes the conformance suite in
// lib/table/tabletest, so the server cannot tell them apart.
//
// # Semantics every Table keeps
//
// A name is held by nobody, by one exclusive holder, by up to Limit
// exclusive holders (a semaphore; Limit 1 is a plain lock) or by any number
// of shared holders; the two modes never mix. Holders and waiters of one
// name agree on Limit while any of them exists (ErrLimitMismatch).
//
// Waiters are served in arrival order: a request is granted at once only
// when it is compatible with the holders and nobody is queued for the name;
// after every release, cancellation or break the head of the queue is
// granted while it is compatible, and the first incompatible waiter stops
// the scan. So a shared request queued behind a waiting exclusive one waits,
// and a big semaphore request never starves.
//
// Every grant carries a fencing token, larger than every token granted
// before for that name, also across restarts when the implementation is
// durable. A lock is never granted without one: when no token can be had
// the request is refused with an error that is ErrUnavailable.
//
// A Table does not time waits out: the caller cancels a wait whose deadline
// passed (Cancel). It tells owners of grants and losses through their
// Notifier.
//
// # Leases
//
// A request with a Lease is a lease request: a lock held by a secret, not
// by a connection. The table knows only the secret's key (a LeaseKey, the
// sha256 of the id the server hands out), never the id. While it waits, a
// lease request is an ordinary waiter of its owner: it is queued FIFO with
// the others, Count counts it, Cancel and ReleaseAll withdraw it. When it
// is granted, at once or from the queue, its owner is told as of any grant
// (Result Granted, or Notifier.Granted), and from then on the lease belongs
// to no owner: Count leaves it out, ReleaseAll leaves it held, Find does not
// return it, and no Notifier is ever told of it again. Release(h) of its
// Holder still releases it (a caller that kept the Holder may), as does
// ReleaseLease with its key.
//
// A lease ends at its Expires: grant (or last renew) plus its TTL, and never
// later than grant plus Request.MaxHold when MaxHold > 0. The table ends it
// by itself then, as ReleaseLease would, and grants the waiters that can go
// (FIFO as always), telling them through their Notifiers; Counters.Expired
// counts such ends. Renew sets Expires to now plus a TTL (0: the TTL the
// lease was granted with), capped at grant plus MaxHold. A lease that
// ended (expired, released, broken) is gone for good: Renew, ReleaseLease
// and LookupLease of its key return ErrNoLease, also in the moment between
// its Expires and the table's taking it away. Break takes leases away as it
// does other holders, but tells nobody (a lease has no owner to tell).
// A lease's fencing token is drawn at grant like any other; renew keeps it.
//
// For a holder that is not a lease, MaxHold is shown (Party.Expires) but
// not enforced: the server takes a connection-bound lock away at its
// maximum hold with its own timer, since the holder's connection is the
// server's. Durable implementations keep leases, with their keys, tokens
// and expiries, across restarts.
package table

import (
	"errors"
	"time"
)

// Mode is how a lock is held. The values are those of protocol.Mode.
type Mode uint8

// The two modes.
const (
	Exclusive Mode = iota // one holder, or up to Limit for a semaphore
	Shared                // any number of shared holders
)

// Errors that Acquire refuses with, and reasons of Notifier.Lost.
var (
	// ErrLimitMismatch: the name is held or awaited with another semaphore size.
	ErrLimitMismatch = errors.New("limit mismatch")
	// ErrQueueFull: the name already has the maximum number of waiters.
	ErrQueueFull = errors.New("queue full")
	// ErrUnavailable is the class of refusals for want of what a grant
	// needs (a durable fencing token, a reachable backend). An
	// implementation's own errors match it with errors.Is and keep their
	// words: the server answers err.Error() on the wire.
	ErrUnavailable = errors.New("unavailable")
	// ErrBroken: an operator took the lock away (Table.Break).
	ErrBroken = errors.New("broken by an operator")
	// ErrNoLease: no lease is held with the key: it was never granted,
	// or it expired, was released or broken.
	ErrNoLease = errors.New("no such lease")
	// ErrInvalid: a request that a correct caller never makes: a lease
	// whose TTL is not above 0, or whose key is in use by a lease held or
	// awaited (keys come from 128 random bits, so this is a bug).
	ErrInvalid = errors.New("invalid request")
)

// Result is the immediate outcome of Acquire.
type Result uint8

// The outcomes of Acquire.
const (
	Granted    Result = iota // held now; Holder.Token is set
	Queued                   // waiting; the owner's Notifier is told when it is granted
	NotGranted               // incompatible, and the caller would not wait
	Refused                  // see the error: ErrLimitMismatch, ErrQueueFull, ErrUnavailable, or ErrInvalid
)

// Request is what Acquire asks for.
type Request struct {
	Name  string
	Mode  Mode
	Limit int  // semaphore size of an exclusive request; 0 or 1: a plain lock; a shared request has none
	Wait  bool // queue when not grantable now
	// Lease, when not nil, makes the request a lease request (see the
	// package doc).
	Lease *LeaseRequest
	// MaxHold, when above 0, caps how long the holder keeps the lock from
	// its grant. The table enforces it for a lease (its Expires never
	// passes grant+MaxHold) and only shows it for other holders, which the
	// server takes away itself.
	MaxHold time.Duration
}

// LeaseKey is the key of a lease: the sha256 of its id. The table keeps
// and stores only the key, so neither its memory nor its state directory
// holds anything that renews or releases a lease.
type LeaseKey [32]byte

// LeaseRequest asks for a lease (Request.Lease).
type LeaseRequest struct {
	Key LeaseKey
	TTL time.Duration // above 0: the lease lives TTL from its grant unless renewed
}

// Lease is a held lease, as Renew, ReleaseLease and LookupLease return it.
type Lease struct {
	Name    string
	Mode    Mode
	Token   uint64        // its fencing token, from the grant
	Since   time.Time     // when it was granted
	Expires time.Time     // when the table ends it unless it is renewed
	TTL     time.Duration // the TTL it was granted with: what Renew with 0 gives it again
}

// Info says who holds or waits, for people reading tnl-stats.
type Info struct {
	ClientID string
	Host     string
	PID      int
	Addr     string // the peer's address
}

// Notifier is an owner's ear. The Table calls it without any of its own
// mutexes held, so it may call back into the Table, and from whichever
// goroutine caused the event (a release by another client, a recovery, a
// break). It must not block for long.
type Notifier interface {
	// Granted: the queued h is held now, with its token.
	Granted(h Holder)
	// Lost: the held h was taken away without its owner asking, why
	// says how (ErrBroken, or an implementation's reason). h is gone
	// when Lost is called, and Release of it reports false.
	Lost(h Holder, why error)
}

// Owner is one client (a connection or a session) that holds or waits for
// locks; Table.NewOwner makes one. All its holders go with ReleaseAll.
type Owner interface {
	// Info is who the owner is, as given to NewOwner.
	Info() *Info
	// Count is the number of holders and waiters the owner has; a
	// granted lease is not one of them.
	Count() int
}

// Holder is one request for a lock: waiting, then held, then gone. It is
// comparable (a pointer inside), so it can key a map.
type Holder interface {
	// Name is the lock's name.
	Name() string
	// Mode is the mode asked for.
	Mode() Mode
	// Token is the fencing token of the grant; 0 while waiting.
	Token() uint64
	// Owner is the owner that asked.
	Owner() Owner
}

// Table is a lock table. All its methods are safe for concurrent use, also
// for the holders of one Owner.
type Table interface {
	// NewOwner makes an owner told of its grants and losses through n.
	NewOwner(info Info, n Notifier) Owner

	// Acquire asks for a lock on behalf of o. On Granted the Holder is
	// held; on Queued it waits and o's Notifier is told when it is
	// granted; on NotGranted and Refused the Holder is nil. A Holder
	// that is not nil belongs to o until Release, Cancel or ReleaseAll,
	// or, for a lease request, until it is granted.
	Acquire(o Owner, r Request) (Holder, Result, error)
	// Release gives up h, held or waiting, and grants whoever can go
	// now, telling them before it returns. It reports whether h was
	// held: false when it was still waiting (and is withdrawn) or gone.
	Release(h Holder) (wasHeld bool)
	// Cancel withdraws h if it is still waiting, and reports whether it
	// did. A Holder granted meanwhile stays held: its grant has been, or
	// is being, delivered through Granted.
	Cancel(h Holder) bool
	// ReleaseAll releases everything o holds or waits for, as when its
	// connection closes: its lease requests that wait, not its leases.
	ReleaseAll(o Owner)
	// Find returns o's holder (held or waiting) of name, or nil; never a
	// granted lease.
	Find(o Owner, name string) Holder
	// Held reports whether h is held now (not waiting, not gone).
	Held(h Holder) bool
	// Break takes name away from all its holders, each told through
	// Lost with ErrBroken (but a lease: nobody is told), grants the
	// waiters that can go now, and returns how many holders lost it,
	// leases included.
	Break(name string) int

	// FirstNames returns the first max names (in byte order) that are
	// held or awaited, sorted, in dst's array when it is large enough,
	// and whether there are more. It keeps at most max names while it
	// looks, however many the table has. max < 1 returns no name, and
	// more reports whether there is any.
	FirstNames(dst []string, max int) (names []string, more bool)
	// List fills li with name's mode, limit and latest token, and with
	// at most max of its parties after cur: holders oldest first, then
	// waiters in queue order (li's slices are emptied and reused). It
	// returns the cursor to go on from, Done exactly when no party
	// followed at the time of the call, and false when the name has no
	// holder or waiter, or when the party cur stands on has left its
	// list since: the listing cannot go on from there.
	List(name string, cur Cursor, max int, li *LockInfo) (Cursor, bool)

	// Renew sets the Expires of the lease with key to now plus ttl (0 or
	// less: the TTL it was granted with), capped at its grant plus its
	// MaxHold, and returns it as renewed. A lease that is not held (never
	// granted, expired, released, broken) is ErrNoLease, and nothing
	// changes. A durable table refuses with an error that is
	// ErrUnavailable when it cannot store the renewal; the lease is then
	// left as it was.
	Renew(key LeaseKey, ttl time.Duration) (Lease, error)
	// ReleaseLease releases the lease with key, grants whoever can go
	// now, telling them before it returns, and returns the lease as it
	// was. A lease that is not held is ErrNoLease.
	ReleaseLease(key LeaseKey) (Lease, error)
	// LookupLease returns the lease with key, or ErrNoLease when it is
	// not held.
	LookupLease(key LeaseKey) (Lease, error)

	// Counters returns the running totals.
	Counters() Counters
	// CountTimeout records a wait that ran out, as a request not acquired.
	CountTimeout()
	// Degraded returns why the table cannot grant every lock now, or nil,
	// in the words of the refusals it causes (the server answers them to
	// an extension .ping). While it is not nil, refusals that are
	// ErrUnavailable belong to the episode it reports: the server logs
	// them at debug level only, and whoever made the table logs the
	// episode once.
	Degraded() error
}

// Cursor is where a listing of one name stands; the zero value starts at
// its first holder. Implementations set its fields; callers pass it back,
// or move it with SkipHolders.
type Cursor struct {
	Last  Holder // the last party listed; nil: none yet in this list
	InQ   bool   // listing the waiters: the holders are done
	AtEnd bool   // nothing follows
}

// Done reports that nothing follows the cursor.
func (c Cursor) Done() bool { return c.AtEnd }

// Waiters reports that the cursor is past the holders.
func (c Cursor) Waiters() bool { return c.InQ }

// SkipHolders moves the cursor to the first waiter, leaving the rest of the
// holders unlisted.
func (c Cursor) SkipHolders() Cursor {
	if c.InQ {
		return c
	}
	return Cursor{InQ: true, AtEnd: c.AtEnd}
}

// Party is one holder or waiter as shown to people.
type Party struct {
	Info
	Mode  Mode
	Limit int       // the semaphore size asked for: 1 for shared requests and plain locks
	Since time.Time // when it was granted; for a waiter, when it queued
	Token uint64    // 0 for waiters
	// Expires is when the table or the server takes the holder away: a
	// lease's end, or grant+MaxHold for another holder asked with one.
	// Zero: never, and for waiters.
	Expires time.Time
	// Lease: the party is a lease request (held or waiting) with key Key;
	// its Info is that of the request that asked for it, without Addr
	// once it is held (a lease has no connection).
	Lease bool
	Key   LeaseKey
}

// LockInfo is one name's holders and waiters (in queue order).
type LockInfo struct {
	Name    string
	Mode    Mode // of the holders; Exclusive when there are none
	Limit   int  // 1 unless exclusive holders or waiters agree on more
	Token   uint64
	Holders []Party
	Waiters []Party
}

// Counters are a table's running totals.
type Counters struct {
	Acquired    uint64 // grants, at once or after a wait
	NotAcquired uint64 // not granted, refused, timed out
	Held        int64  // holders now
	Waiting     int64  // waiters now
	Names       int64  // names with holders or waiters
	Leases      int64  // leases held now (also in Held)
	Expired     uint64 // leases the table ended at their Expires
}
