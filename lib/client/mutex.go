package client

import (
	"context"
	"errors"
	"sync"
)

// ErrNotLocked is what Mutex.Unlock returns when the Mutex is not locked.
var ErrNotLocked = errors.New("mutex not locked")

// Mutex is a lock name of the Client used as a mutual exclusion lock, the
// idiom of a DLM's or of Consul's lock: Lock blocks until it is held,
// Unlock gives it back. It excludes the goroutines of this process that
// share the Mutex as well as every other client of the server: a second
// Lock waits here, in the process, for the first Unlock, since one session
// holds a name once. It is safe for concurrent use.
//
// A held Mutex can still be lost (the server gone silent, an operator's
// break, its MaxHold): Held's Done and Err say so, and Unlock then returns
// the loss. Make one Mutex per name and Client: two would ask the session
// for the same name, and the second is refused.
type Mutex struct {
	c    *Client
	name string
	opts LockOptions

	// sem is the Mutex in this process: taken by Lock and TryLock before
	// they ask the server, given back by Unlock.
	sem  chan struct{}
	mu   sync.Mutex
	lock *Lock // under mu: the held lock, nil when not locked
}

// Mutex returns a Mutex for name. o's Shared, Limit and MaxHold are those
// of every Lock; its Wait bounds Lock's wait (0: wait until the context
// ends); TryLock never waits in the server's queue.
func (c *Client) Mutex(name string, o LockOptions) *Mutex {
	return &Mutex{c: c, name: name, opts: o, sem: make(chan struct{}, 1)}
}

// Lock blocks until the Mutex is held, or returns the error of
// Client.Lock: ctx.Err() when the context ended the wait, ErrTimeout when
// the LockOptions' Wait ran out, a *ServerError, a *LostError when the
// session ended. Nothing is held when it fails.
func (m *Mutex) Lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil { // before select, which picks at random
		return err
	}
	select {
	case m.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	o := m.opts
	if o.Wait == 0 {
		o.Wait = Forever // the context bounds it
	}
	return m.take(ctx, o)
}

// TryLock takes the Mutex if nobody holds it, here or elsewhere, without
// waiting: true when it is held now, false (and a nil error) when someone
// holds it. The error is Client.Lock's for anything else.
func (m *Mutex) TryLock(ctx context.Context) (bool, error) {
	select {
	case m.sem <- struct{}{}:
	default:
		return false, nil
	}
	o := m.opts
	o.Wait = 0
	err := m.take(ctx, o)
	if errors.Is(err, ErrNotGranted) {
		return false, nil
	}
	return err == nil, err
}

// take asks the server, the Mutex being taken in this process.
func (m *Mutex) take(ctx context.Context, o LockOptions) error {
	l, err := m.c.Lock(ctx, m.name, o)
	if err != nil {
		<-m.sem
		return err
	}
	m.mu.Lock()
	m.lock = l
	m.mu.Unlock()
	return nil
}

// Unlock releases the Mutex. It returns ErrNotLocked when the Mutex is not
// locked, the lock's loss (a *LostError) when it was lost while held, or
// the release's error; the Mutex is unlocked after it in every case but
// the first, so that the next Lock may try again.
func (m *Mutex) Unlock() error {
	m.mu.Lock()
	l := m.lock
	m.lock = nil
	m.mu.Unlock()
	if l == nil {
		return ErrNotLocked
	}
	err := l.Release()
	<-m.sem
	return err
}

// Held returns the held lock (its Token, Done and Err), or nil when the
// Mutex is not locked.
func (m *Mutex) Held() *Lock {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lock
}
