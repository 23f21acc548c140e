package main

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// The redis lock is the one the redis documentation describes for a single
// instance: SET key token NX PX ttl to acquire, a compare-and-delete Lua
// script to release, and a retry with jittered exponential backoff while
// someone else holds it (redis has no queue to wait in).

// redisTTL is the lock's expiry: far longer than any cycle, so that no lock
// expires under a holder during the run.
const redisTTL = 30 * time.Second

// redisRelease deletes the key only if it still holds our token.
var redisRelease = redis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`)

type redisPeer struct {
	*peer
	rdb *redis.Client
}

func startRedis(ctx context.Context, dir string) (*redisPeer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, skipf("redis-server not installed (apt-get install redis-server, or make bench-deps)")
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p, err := startProcess("redis", dir, bin, []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no",
		"--dir", dir,
	}, nil)
	if err != nil {
		return nil, err
	}
	p.addr = addr
	// The pool is larger than the largest worker count, so that no worker
	// ever waits for a connection inside the client.
	rdb := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 128, MinIdleConns: 0})
	p.closers = append(p.closers, func() { _ = rdb.Close() })
	if err := p.waitReady(ctx, func(ctx context.Context) error { return rdb.Ping(ctx).Err() }); err != nil {
		p.stop()
		return nil, err
	}
	return &redisPeer{peer: p, rdb: rdb}, nil
}

func (r *redisPeer) target(backoffMin, backoffMax time.Duration) *target {
	var n atomic.Int64
	return &target{
		peer: "redis", mode: "SET NX PX + Lua", pid: r.pid(), exclusive: true,
		newLocker: func(context.Context, bool) (locker, error) {
			var b [8]byte
			_, _ = crand.Read(b[:])
			return &redisLocker{
				rdb: r.rdb, prefix: hex.EncodeToString(b[:]) + "-" + strconv.FormatInt(n.Add(1), 10) + "-",
				min: backoffMin, max: backoffMax,
			}, nil
		},
	}
}

type redisLocker struct {
	rdb      *redis.Client
	prefix   string // unique per worker; a counter makes each token unique
	n        uint64
	token    string
	min, max time.Duration
	retries  atomic.Int64
}

func (l *redisLocker) lock(ctx context.Context, name string) (uint64, error) {
	l.n++
	l.token = l.prefix + strconv.FormatUint(l.n, 10)
	backoff := l.min
	for {
		err := l.rdb.Do(ctx, "SET", name, l.token, "NX", "PX", redisTTL.Milliseconds()).Err()
		if err == nil {
			return 0, nil
		}
		if !errors.Is(err, redis.Nil) {
			return 0, err
		}
		l.retries.Add(1)
		// Full jitter (sleep uniformly in [0, backoff)): the contenders
		// spread out instead of retrying in lockstep.
		sleep := time.Duration(rand.Int64N(int64(backoff)) + 1)
		t := time.NewTimer(sleep)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		}
		backoff = min(2*backoff, l.max)
	}
}

func (l *redisLocker) unlock(ctx context.Context, name string) error {
	n, err := redisRelease.Run(ctx, l.rdb, []string{name}, l.token).Int64()
	if err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("release of %s deleted %d keys: the lock had expired or was taken", name, n)
	}
	return nil
}

func (l *redisLocker) close() error      { return nil }
func (l *redisLocker) retryCount() int64 { return l.retries.Load() }

// redisHeld sets n lock keys, pipelined in batches, and measures redis's
// memory per held lock.
func (r *redisPeer) held(ctx context.Context, cas string, n int, settle time.Duration) *Result {
	res := &Result{Scenario: "held", Case: cas, Peer: "redis", Mode: "keys, pipelined", Locks: int64(n)}
	rss0, err := procRSS(r.pid())
	if err != nil {
		res.Err = err.Error()
		return res
	}
	cpu0, _ := procCPU(r.pid())
	t0 := time.Now()
	const batch = 1000
	for i := 0; i < n; i += batch {
		pipe := r.rdb.Pipeline()
		cmds := make([]*redis.Cmd, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			cmds = append(cmds, pipe.Do(ctx, "SET", "held-"+strconv.Itoa(j), "tok-"+strconv.Itoa(j), "NX", "PX", (10*time.Minute).Milliseconds()))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			res.Err = fmt.Sprintf("lock %d: %v", i, err)
			return res
		}
		for _, c := range cmds {
			if c.Err() != nil {
				res.Err = fmt.Sprintf("lock: %v", c.Err())
				return res
			}
		}
	}
	heldFill(res, r.pid(), n, time.Since(t0), rss0, cpu0, settle)
	return res
}
