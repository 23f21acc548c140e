package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// heldTimeout bounds one held scenario from the first dial to the last grant.
const heldTimeout = 3 * time.Minute

// heldFill completes a held result once all n locks are granted: the
// acquisition rate and the server's RSS growth per lock, read at once and
// again after settle, so that a server that tidies idle connections lazily
// (parks them, frees buffers) is measured in its steady state too.
func heldFill(res *Result, pid, n int, elapsed time.Duration, rss0 int64, cpu0 time.Duration, settle time.Duration) {
	res.Seconds = elapsed.Seconds()
	res.Ops = int64(n)
	if elapsed > 0 {
		res.OpsPerSec = float64(n) / elapsed.Seconds()
	}
	if cpu1, err := procCPU(pid); err == nil {
		res.ServerCPUSeconds = (cpu1 - cpu0).Seconds()
		if n > 0 {
			res.CPUusPerOp = res.ServerCPUSeconds * 1e6 / float64(n)
		}
	}
	rssGrant, err := procRSS(pid)
	if err != nil {
		res.Err = err.Error()
		return
	}
	rss1 := rssGrant
	if settle > 0 {
		time.Sleep(settle)
		if rss1, err = procRSS(pid); err != nil {
			res.Err = err.Error()
			return
		}
	}
	res.RSSBefore, res.RSSAtGrant, res.RSSAfter = rss0, rssGrant, rss1
	if n > 0 {
		res.BytesPerLock = float64(rss1-rss0) / float64(n)
		res.BytesPerLockAtGrant = float64(rssGrant-rss0) / float64(n)
	}
}

// heldConns opens n connections to a tnl-protocol server, each holding its
// own legacy lock ("lock,name:hN" -> "ok"), and measures the server's RSS
// growth per held lock while they are all open.
func heldConns(ctx context.Context, peerName, addr string, pid, n int, settle time.Duration) *Result {
	res := &Result{Scenario: "held", Case: "conn", Peer: peerName, Mode: "legacy, conn per lock", Locks: int64(n)}
	ctx, cancel := context.WithTimeout(ctx, heldTimeout)
	defer cancel()
	rss0, err := procRSS(pid)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	cpu0, _ := procCPU(pid)

	conns := make([]net.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
	}()
	t0 := time.Now()
	// 64 dialers: enough to keep the server's accept loop busy, few enough
	// to stay inside its listen backlog.
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			d := net.Dialer{Timeout: dialTimeout}
			br := bufio.NewReaderSize(nil, 64)
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				err := func() error {
					c, err := d.DialContext(ctx, "tcp", addr)
					if err != nil {
						return err
					}
					conns[i] = c
					_ = c.SetDeadline(deadlineOf(ctx))
					if _, err := c.Write([]byte("lock,name:h" + strconv.Itoa(i) + "\n")); err != nil {
						return err
					}
					br.Reset(c)
					got, err := readLine(br)
					if err != nil {
						return err
					}
					if !bytes.Equal(got, legacyOK) {
						return &errReply{req: "lock,name:h" + strconv.Itoa(i), got: string(got), want: `"ok"`}
					}
					return nil
				}()
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("connection %d: %w", i, err) })
					cancel()
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
	heldFill(res, pid, n, time.Since(t0), rss0, cpu0, settle)
	return res
}

// heldSession takes n locks over a few session connections: each connection
// has a writer pipelining "lock,name:sN" lines and a reader checking the
// "ok,name:sN,token:T" answers, so that the rate is the server's, not the
// round trip's. It measures the server's RSS growth per held lock.
func heldSession(ctx context.Context, peerName, addr string, pid, n, nconns int, settle time.Duration) *Result {
	res := &Result{Scenario: "held", Case: "session", Peer: peerName, Mode: fmt.Sprintf("session, %d conns", nconns), Locks: int64(n)}
	ctx, cancel := context.WithTimeout(ctx, heldTimeout)
	defer cancel()
	sessions := make([]*tnlSession, nconns)
	defer func() {
		for _, s := range sessions {
			if s != nil {
				_ = s.close()
			}
		}
	}()
	for i := range sessions {
		s, err := openSession(ctx, addr)
		if err != nil {
			res.Err = fmt.Sprintf("session %d: %v", i, err)
			return res
		}
		sessions[i] = s
	}
	rss0, err := procRSS(pid)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	cpu0, _ := procCPU(pid)
	t0 := time.Now()
	errs := make([]error, nconns)
	var wg sync.WaitGroup
	for k, s := range sessions {
		lo, hi := k*n/nconns, (k+1)*n/nconns
		wg.Go(func() {
			// The writer runs beside the reader: a server that stops
			// reading while its replies back up must not deadlock us.
			werr := make(chan error, 1)
			go func() {
				w := bufio.NewWriterSize(s.c, 64<<10)
				var line []byte
				for i := lo; i < hi; i++ {
					line = append(line[:0], "lock,name:s"...)
					line = strconv.AppendInt(line, int64(i), 10)
					line = append(line, '\n')
					if _, err := w.Write(line); err != nil {
						werr <- err
						return
					}
				}
				werr <- w.Flush()
			}()
			var prefix []byte
			for i := lo; i < hi; i++ {
				got, err := readLine(s.br)
				if err != nil {
					errs[k] = fmt.Errorf("reading the answer to lock %d: %w", i, err)
					_ = s.c.Close() // unblocks the writer
					<-werr
					return
				}
				prefix = append(prefix[:0], "ok,name:s"...)
				prefix = strconv.AppendInt(prefix, int64(i), 10)
				prefix = append(prefix, ',')
				if _, ok := parseGrant(got, prefix); !ok {
					errs[k] = &errReply{req: "lock,name:s" + strconv.Itoa(i), got: string(got), want: fmt.Sprintf("%q", string(prefix)+"token:T")}
					_ = s.c.Close()
					<-werr
					return
				}
			}
			if err := <-werr; err != nil {
				errs[k] = err
			}
		})
	}
	wg.Wait()
	for k, err := range errs {
		if err != nil {
			res.Err = fmt.Sprintf("session %d: %v", k, err)
			return res
		}
	}
	heldFill(res, pid, n, time.Since(t0), rss0, cpu0, settle)
	// The locks stay held while RSS is read. A ".keepalive" now checks that
	// every session survived it (a session idle for longer than its
	// dead-peer timeout would need one anyway).
	for k, s := range sessions {
		if err := s.keepalive(); err != nil {
			res.Err = fmt.Sprintf("session %d: keepalive after holding: %v", k, err)
		}
	}
	return res
}
