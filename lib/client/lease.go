package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tnl-lock/tnl/lib/protocol"
)

// ErrNoLease is the reason of a *ServerError when the server knows no lease
// by the id given: it expired, was released, or never was this id. Test
// with errors.Is(err, ErrNoLease).
var ErrNoLease = errors.New(protocol.ReasonNoLease)

// LeaseStatus is what the server said of a lease, and when.
type LeaseStatus struct {
	Name  string // the lock the lease holds
	Token uint64 // the fencing token of its grant; renewing keeps it
	// TTL is what remained of the lease when the server answered, cut
	// down to the millisecond.
	TTL time.Duration
	// At is when the request was sent. The server measured TTL later, when
	// it answered, so that At+TTL (Expires) is never after the lease's
	// true end, whatever the round trip took.
	At time.Time
}

// Expires is the latest the lease can be counted on: At + TTL.
func (s LeaseStatus) Expires() time.Time { return s.At.Add(s.TTL) }

// Lease is a granted lease: a lock held by its secret ID rather than by
// the session, as etcd's and Consul's leases are. It outlives the Client
// that took it: it ends when released (ReleaseLease) or when its TTL runs
// out without a renewal (Renew), also from another process or host that
// was given the ID.
type Lease struct {
	// ID is the lease's secret: 32 lowercase hex digits. Whoever has it
	// may renew or release the lease; keep it as a password is kept, and
	// never log it.
	ID string
	LeaseStatus
}

// AcquireLease asks for name as a lease of the given TTL (protocol.MinTTL
// to protocol.MaxTTL), with o's wait, mode, limit and maximum hold. It
// returns the Lease, or the errors of Lock: ErrNotGranted, ErrTimeout,
// ctx.Err(), a *ServerError, an error about the connection. The lease is
// asked for in the session, but it is not the session's: closing the
// Client leaves it held. A wait withdrawn (ctx) as the lease was granted
// releases it again.
func (c *Client) AcquireLease(ctx context.Context, name string, ttl time.Duration, o LockOptions) (*Lease, error) {
	req, err := lockRequest(name, o)
	if err != nil {
		return nil, err
	}
	if err := checkSpan("ttl", ttl, false); err != nil {
		return nil, err
	}
	req.TTL = ttl
	at := time.Now()
	rep, l, err := c.ask(ctx, req)
	if err != nil {
		return nil, err
	}
	if l != nil { // held by the session: let it go
		_ = l.Release()
	}
	if rep.Lease == "" {
		return nil, fmt.Errorf("server %s granted %s without a lease id: it does not know leases", c.opts.Addr, name)
	}
	return &Lease{ID: rep.Lease, LeaseStatus: LeaseStatus{Name: name, Token: rep.Token, TTL: rep.TTL, At: at}}, nil
}

// Renew starts the TTL of the lease id again from now: ttl from now, or,
// when ttl is 0, the TTL it was granted with. The answer's TTL is less
// than asked when the lease's maximum hold comes first. A lease the server
// does not know (expired, released) gives a *ServerError that is
// ErrNoLease.
func (c *Client) Renew(ctx context.Context, id string, ttl time.Duration) (LeaseStatus, error) {
	if err := checkSpan("ttl", ttl, true); err != nil {
		return LeaseStatus{}, err
	}
	return c.leaseQuery(ctx, protocol.Request{Action: protocol.ActRenew, Lease: id, TTL: ttl}, protocol.KindRenewed)
}

// LeaseHeld tells whether the lease id is still held, without renewing it:
// its status, or a *ServerError that is ErrNoLease when it is not.
func (c *Client) LeaseHeld(ctx context.Context, id string) (LeaseStatus, error) {
	return c.leaseQuery(ctx, protocol.Request{Action: protocol.ActIsHeld, Lease: id}, protocol.KindHeld)
}

// ReleaseLease ends the lease id now; the next waiter of its name is
// granted. A lease the server does not know gives a *ServerError that is
// ErrNoLease.
func (c *Client) ReleaseLease(ctx context.Context, id string) error {
	_, err := c.leaseQuery(ctx, protocol.Request{Action: protocol.ActReleaseLease, Lease: id}, protocol.KindReleased)
	return err
}

// leaseQuery sends a lease request in the session; its answer comes in
// order, as those of the other queries.
func (c *Client) leaseQuery(ctx context.Context, req protocol.Request, want protocol.Kind) (LeaseStatus, error) {
	if !protocol.ValidLeaseID(req.Lease) {
		// Checked here: a value the server would refuse is said without
		// echoing what may be a secret.
		return LeaseStatus{}, errors.New("invalid lease id: want 32 lowercase hex digits")
	}
	at := time.Now()
	rep, err := c.query(ctx, req, want)
	if err != nil {
		return LeaseStatus{}, err
	}
	if rep.Kind != want {
		return LeaseStatus{}, fmt.Errorf("server %s answered %s to %s", c.opts.Addr, rep.Kind, req.Action)
	}
	return LeaseStatus{Name: rep.Name, Token: rep.Token, TTL: rep.TTL, At: at}, nil
}

// leaseAnswer reports whether rep is the answer to the oldest query, a
// lease request, rather than to anything else in flight. Called under mu.
//
// renewed and held answer nothing else. released,name:N may be the answer
// to the session's own release of N too (a lock of N held beside a lease
// of N, shared or a semaphore), or to the release that withdrew a wait for
// N: the server answers these at once, in order, so the request written
// first is the one answered.
func (c *Client) leaseAnswer(rep protocol.Reply) bool {
	if len(c.queries) == 0 {
		return false
	}
	q := c.queries[0]
	switch {
	case q.want == protocol.KindUnknown:
		return false
	case rep.Kind == protocol.KindRenewed || rep.Kind == protocol.KindHeld:
		return true
	case rep.Kind != protocol.KindReleased || q.want != protocol.KindReleased:
		return false
	}
	first := func(cl *call) bool { return cl == nil || cl.seq == 0 || q.seq < cl.seq }
	if cl := c.calls[rep.Name]; cl != nil && cl.cancelled && !first(cl) {
		return false
	}
	return first(c.releases[rep.Name])
}
