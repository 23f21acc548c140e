package server

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"
)

// Log lines a peer can make the server repeat (refusals, connections closed
// for silence) go through a rateLog: per message, at most rateBurst lines
// per rateWindow, then one summary line when the window ends, "MESSAGE (N
// similar lines suppressed)". Why: unauthenticated refusals alone made
// 17,600 WARN lines a second, which fill a disk and drown every other line.
// The key is the message, which is always a constant of the code, never
// something the peer sent, so the table of messages stays small.
const (
	rateBurst  = 5
	rateWindow = time.Second
)

// rateLog is the limiter shared by every handler derived from one
// rateHandler.
type rateLog struct {
	*slog.Logger
	burst int
	every time.Duration
	now   func() time.Time
	after func(time.Duration, func()) // schedules a summary: time.AfterFunc

	mu sync.Mutex
	m  map[string]*rateState
}

// rateState is one message's current window.
type rateState struct {
	start      time.Time
	n          int          // lines in this window, passed or not
	suppressed int          // lines not passed, not yet summarised
	level      slog.Level   // of the last line suppressed
	h          slog.Handler // that handled it, for its summary
	scheduled  bool         // a summary is scheduled
}

func newRateLog(h slog.Handler) *rateLog {
	return newRateLogWith(h, rateBurst, rateWindow, time.Now, func(d time.Duration, f func()) { time.AfterFunc(d, f) })
}

func newRateLogWith(h slog.Handler, burst int, every time.Duration, now func() time.Time, after func(time.Duration, func())) *rateLog {
	l := &rateLog{burst: burst, every: every, now: now, after: after, m: map[string]*rateState{}}
	l.Logger = slog.New(&rateHandler{h: h, l: l})
	return l
}

// rateHandler is the slog.Handler of a rateLog's Logger.
type rateHandler struct {
	h slog.Handler
	l *rateLog
}

func (r *rateHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return r.h.Enabled(ctx, level)
}

func (r *rateHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &rateHandler{h: r.h.WithAttrs(as), l: r.l}
}

func (r *rateHandler) WithGroup(name string) slog.Handler {
	return &rateHandler{h: r.h.WithGroup(name), l: r.l}
}

func (r *rateHandler) Handle(ctx context.Context, rec slog.Record) error {
	l := r.l
	now := l.now()
	l.mu.Lock()
	st := l.m[rec.Message]
	if st == nil {
		st = &rateState{start: now}
		l.m[rec.Message] = st
	}
	var sum rateState
	if now.Sub(st.start) >= l.every {
		// A new window. What the last one suppressed is told first, unless
		// its scheduled summary did it already.
		sum = *st
		st.suppressed, st.start, st.n = 0, now, 0
	}
	st.n++
	pass := st.n <= l.burst
	if !pass {
		st.suppressed++
		st.level, st.h = rec.Level, r.h
		if !st.scheduled {
			st.scheduled = true
			msg := rec.Message
			l.after(st.start.Add(l.every).Sub(now), func() { l.flush(msg) })
		}
	}
	l.mu.Unlock()
	if sum.suppressed > 0 {
		l.summary(ctx, rec.Message, &sum)
	}
	if !pass {
		return nil
	}
	return r.h.Handle(ctx, rec)
}

// flush tells what msg's window suppressed, when its summary is due.
func (l *rateLog) flush(msg string) {
	l.mu.Lock()
	st := l.m[msg]
	sum := *st
	st.suppressed, st.scheduled = 0, false
	l.mu.Unlock()
	if sum.suppressed > 0 {
		l.summary(context.Background(), msg, &sum)
	}
}

// flushAll tells every summary still due, as the server stops.
func (l *rateLog) flushAll() {
	l.mu.Lock()
	var msgs []string
	for msg, st := range l.m {
		if st.suppressed > 0 {
			msgs = append(msgs, msg)
		}
	}
	l.mu.Unlock()
	for _, msg := range msgs {
		l.flush(msg)
	}
}

func (l *rateLog) summary(ctx context.Context, msg string, st *rateState) {
	rec := slog.NewRecord(l.now(), st.level, msg+" ("+strconv.Itoa(st.suppressed)+" similar lines suppressed)", 0)
	rec.AddAttrs(slog.Int("suppressed", st.suppressed))
	_ = st.h.Handle(ctx, rec)
}
