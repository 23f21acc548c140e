package main

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// The etcd lock is what etcd users write: a concurrency.Session (a lease
// kept alive in the background) per worker and a concurrency.Mutex per lock,
// which queues waiters by key revision, so it is FIFO like tnl's wait.

type etcdPeer struct {
	*peer
	cli *clientv3.Client
}

func startEtcd(ctx context.Context, dir string) (*etcdPeer, error) {
	bin, err := exec.LookPath("etcd")
	if err != nil {
		return nil, skipf("etcd not installed (apt-get install etcd-server, or make bench-deps)")
	}
	cport, err := freePort()
	if err != nil {
		return nil, err
	}
	pport, err := freePort()
	if err != nil {
		return nil, err
	}
	curl := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(cport))
	purl := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(pport))
	p, err := startProcess("etcd", dir, bin, []string{
		"--name", "bench", "--data-dir", filepath.Join(dir, "etcd-data"),
		"--listen-client-urls", curl, "--advertise-client-urls", curl,
		"--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
		"--initial-cluster", "bench=" + purl, "--initial-cluster-state", "new",
		"--log-level", "warn", "--logger", "zap",
	}, nil)
	if err != nil {
		return nil, err
	}
	p.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(cport))
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: []string{p.addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
	})
	if err != nil {
		p.stop()
		return nil, err
	}
	p.closers = append(p.closers, func() { _ = cli.Close() })
	err = p.waitReady(ctx, func(ctx context.Context) error {
		_, err := cli.Get(ctx, "bench-ready")
		return err
	})
	if err != nil {
		p.stop()
		return nil, err
	}
	return &etcdPeer{peer: p, cli: cli}, nil
}

// etcdSessionTTL is the lease of each worker's session, in seconds; the
// session renews it in the background.
const etcdSessionTTL = 60

func (e *etcdPeer) target() *target {
	return &target{
		peer: "etcd", mode: "concurrency.Mutex", pid: e.pid(), exclusive: true,
		newLocker: func(ctx context.Context, _ bool) (locker, error) {
			s, err := concurrency.NewSession(e.cli, concurrency.WithTTL(etcdSessionTTL), concurrency.WithContext(ctx))
			if err != nil {
				return nil, err
			}
			return &etcdLocker{s: s}, nil
		},
	}
}

type etcdLocker struct {
	s *concurrency.Session
	m *concurrency.Mutex
}

func (l *etcdLocker) lock(ctx context.Context, name string) (uint64, error) {
	l.m = concurrency.NewMutex(l.s, "/bench/"+name)
	if err := l.m.Lock(ctx); err != nil {
		return 0, err
	}
	// The revision of the grant is etcd's fencing token, what `etcdctl
	// lock` hands its child as ETCD_LOCK_REV: it strictly increases.
	return uint64(l.m.Header().Revision), nil
}

func (l *etcdLocker) unlock(ctx context.Context, _ string) error { return l.m.Unlock(ctx) }

func (l *etcdLocker) close() error { return l.s.Close() }

// held takes n mutexes on one session, 64 at a time, and measures etcd's
// memory per held lock.
func (e *etcdPeer) held(ctx context.Context, cas string, n int, settle time.Duration) *Result {
	res := &Result{Scenario: "held", Case: cas, Peer: "etcd", Mode: "mutexes, one session", Locks: int64(n)}
	s, err := concurrency.NewSession(e.cli, concurrency.WithTTL(etcdSessionTTL), concurrency.WithContext(ctx))
	if err != nil {
		res.Err = err.Error()
		return res
	}
	defer s.Close()
	rss0, err := procRSS(e.pid())
	if err != nil {
		res.Err = err.Error()
		return res
	}
	cpu0, _ := procCPU(e.pid())
	t0 := time.Now()
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				m := concurrency.NewMutex(s, "/bench/held-"+strconv.FormatInt(i, 10))
				if err := m.Lock(ctx); err != nil {
					once.Do(func() { firstErr = fmt.Errorf("lock %d: %w", i, err) })
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		res.Err = firstErr.Error()
		return res
	}
	heldFill(res, e.pid(), n, time.Since(t0), rss0, cpu0, settle)
	return res
}
