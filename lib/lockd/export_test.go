package lockd

import (
	"cmp"
	"os"
	"slices"

	"github.com/tnl-lock/tnl/lib/table"
)

// MemTokens is the default TokenSource, for the tests that draw from it.
type MemTokens = memTokens

// NewOwner makes an owner as Table.NewOwner does, without a table.
func NewOwner(info table.Info, n table.Notifier) table.Owner {
	return &owner{info: info, notifier: n}
}

// SetNotifier sets o's Notifier, for a Notifier that must know its owner.
func SetNotifier(o table.Owner, n table.Notifier) { asOwner(o).notifier = n }

// ExpireDue ends the leases whose Expires has come by the table's clock, as
// the timer does, for tests that set the clock.
func (t *Table) ExpireDue() { t.expireDue() }

// FailWrites makes every later write of l fail with err (nil: write again).
func (l *FileLeases) FailWrites(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		l.write = appendSync
		return
	}
	l.write = func(*os.File, []byte) error { return err }
}

// HoldingOff reports whether the table still grants nothing (Options.HoldOff).
func (t *Table) HoldingOff() bool { return t.holdOff.Load() }

// Entries counts the names in the shard maps, so that tests can check that
// idle names are really forgotten and not merely left out of the counters.
func (t *Table) Entries() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// Snapshot is the tests' whole view of the table, the oracle that List
// and the model checks are held against: it copies everything at once,
// which the server must never do (see list.go). It returns the holders and waiters of the given names, or of every
// name when none is given, sorted by name. Names without holders or waiters
// are left out. maxParties bounds the holders and waiters listed per name
// (0 = all), so that a huge shared lock cannot make one answer unbounded.
func (t *Table) Snapshot(names []string, maxParties int) []table.LockInfo {
	var out []table.LockInfo
	collect := func(e *entry) {
		li := table.LockInfo{Name: e.name, Mode: e.mode, Limit: int(e.limit), Token: e.token}
		if e.nexcl == 0 {
			// e.limit is left over from exclusive requests that are gone.
			li.Limit = 1
		}
		for h := e.held; h != nil && (maxParties == 0 || len(li.Holders) < maxParties); h = h.next {
			li.Holders = append(li.Holders, party(h))
		}
		if e.nheld == 0 {
			li.Mode = table.Exclusive
		}
		for h := e.qhead; h != nil && (maxParties == 0 || len(li.Waiters) < maxParties); h = h.next {
			li.Waiters = append(li.Waiters, party(h))
		}
		out = append(out, li)
	}
	if len(names) > 0 {
		for _, n := range names {
			s := t.shard(n)
			s.mu.Lock()
			if e := s.m[n]; e != nil {
				collect(e)
			}
			s.mu.Unlock()
		}
	} else {
		for i := range t.shards {
			s := &t.shards[i]
			s.mu.Lock()
			for _, e := range s.m {
				collect(e)
			}
			s.mu.Unlock()
		}
	}
	sortInfos(out)
	return out
}

func sortInfos(s []table.LockInfo) {
	slices.SortFunc(s, func(a, b table.LockInfo) int { return cmp.Compare(a.Name, b.Name) })
}
