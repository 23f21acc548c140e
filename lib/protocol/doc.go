// Package protocol parses and formats the lines of the tnl wire protocol,
// both ways: requests (ParseRequest, AppendRequest), answers (AppendReply,
// ParseReply and friends), the reasons of "err" answers (IsReason), and the
// JSON of a holders answer (Holders, streamed by HoldersEncoder). The
// server, the Go client, the commands, the fuzzers and the benchmark all
// share it, so that each action, key, answer and field is spelled in one
// place, and what one side writes the other side reads back (fuzzed).
//
// It is pure and deliberately small: no network and no reading of lines
// (bounding a line or the wait for it is the caller's), no clock, no lock
// table, no policy (whether a name is granted, who may break it, what a
// secret must be). It checks the grammar and the ranges of values, and
// formats into a caller's buffer, so that the lock and release path
// allocates nothing for its lines.
//
// # Line grammar
//
// A request is one line: ACTION[,KEY:VALUE]... ending in "\n" ("\r\n" is
// tolerated). Whitespace around the action, keys and values is ignored; a value
// may contain ':'; a key without ':' has the empty value. An empty action, an
// empty key, a trailing comma or a blank line make the line malformed
// (answer "bad-request"). Unknown keys are ignored; a repeated key: the last
// wins. Actions are case-sensitive. Every answer is one line ending in "\n".
//
// # Legacy requests (tcpnetlock 0.1.8, byte for byte)
//
//	lock,name:NAME[,client-id:ID]  -> ok | not-granted (close) | err,invalid lock name (close)
//	  while holding: .keepalive -> alive; release -> released (close);
//	  anything else -> bad-action (lock kept)
//	.ping                          -> pong (close)
//	.stats                         -> stats,{"lock_count": 1, ...} (close)
//	.server-shutdown               -> bad-action (close); tnl never stops for a peer
//	unknown action                 -> bad-action (close)
//	malformed line                 -> bad-request (close)
//
// # Extension keys on lock (any of them makes the request an extension request)
//
//	wait:SECONDS   wait in the FIFO queue up to SECONDS (decimal, "2.5"), or a Go
//	               duration ("250ms", "5m"), or "inf"; 0 = try once (default);
//	               rounded to the nearest nanosecond (ParseDuration, ParseWait)
//	mode:shared    a shared holder (many readers); mode:exclusive is the default
//	limit:N        semaphore: up to N exclusive holders (1..1000000); holders and
//	               waiters of one name must agree on N
//	pid:N, host:H  who is asking, shown by .holders and tnl-stats
//	ttl:SECONDS    take a lease instead (see Leases below)
//	max-hold:SECONDS  cap the hold (see Leases below)
//
// An extension lock on a fresh connection answers
//
//	ok,token:T       granted; T is the fencing token (strictly increasing per name,
//	                 also across restarts); then the connection behaves as legacy
//	not-granted      (close) held by someone else and wait was 0
//	timeout          (close) the wait ran out
//	err,MESSAGE      (close) e.g. "err,limit mismatch",
//	                 "err,queue full", "err,invalid wait: ..."
//
// While an extension lock waits, .keepalive is answered "alive"; closing the
// connection leaves the queue at once.
//
// # Who holds what
//
//	.holders[,name:NAME]  -> holders,{JSON} (close)
//
// The answer is bounded by the server (names, parties per name, bytes);
// when it leaves something out, the JSON says "truncated":true
// (Holders, HoldersEncoder).
//
// # Sessions
//
//	.session[,client-id:ID][,pid:N][,host:H]  -> session,dead-peer-timeout:SECONDS
//
// opens a session: the connection stays open, holds many locks (up to the
// server's caps) and answers every request without closing:
//
//	lock,name:N[,wait:..][,mode:..][,limit:..]  -> ok,name:N,token:T | not-granted,name:N |
//	                                               timeout,name:N | err,name:N,MESSAGE
//	release,name:N    -> released,name:N (held, or granted just before the
//	                     release arrived) | cancelled,name:N (was waiting) |
//	                     err,name:N,not held
//	.keepalive -> alive    .ping -> pong    .stats -> stats,{..}    .holders -> holders,{..}
//	.quit      -> bye (close)
//
// A session client must send a line (".keepalive" will do) at least every
// dead-peer-timeout; a silent session is closed by the server and its locks
// released. Closing the connection releases everything the session holds and
// cancels its waits. Answers to waits come when the wait ends, so they may
// arrive after answers to later requests: match them by name.
//
// The server may send one line unprompted in a session:
//
//	lost,name:N           an operator broke the lock (.break); it is no longer held
//	lost,name:N,why:TEXT  the server took it away: "maximum hold of S reached"
//
// TEXT is for people: free text without a comma or a line break
// (AppendLost writes a comma ';' and a control character ' ').
//
// # Leases and maximum hold
//
// A lease is a lock held by a secret id, not by a connection: it ends when
// it is released or when its TTL runs out, and any connection that has the
// id may renew, release or check it. Durations are written as wait's
// (seconds, "7200", "1.5", or "2h"), MinTTL to MaxTTL (1ms to 366 days), no
// "inf" ("err,invalid ttl: ...").
//
//	lock,name:N,ttl:S[,wait:..][,mode:..][,limit:..][,max-hold:S]
//	                  -> ok,token:T,lease:ID,ttl:S (close: the lease is bound
//	                     to no connection) | not-granted | timeout | err,MESSAGE
//	                     in a session: ok,name:N,token:T,lease:ID,ttl:S
//	.renew,lease:ID[,ttl:S]  -> renewed,name:N,token:T,ttl:S
//	.release,lease:ID        -> released,name:N
//	.is-held,lease:ID        -> held,name:N,token:T,ttl:S
//
// An unknown, expired or released id is answered "err,no such lease"
// (ReasonNoLease); a lease value that is not 32 lowercase hex digits
// "err,invalid lease: ...". ID is made by the server (NewLeaseID) and sent
// once, in the grant; the server keeps only its LeaseKey, and shows only its
// LeaseFingerprint. The ttl of an answer is what remains, to the
// millisecond (AppendLease); without ttl:, .renew gives the lease its
// granted TTL again. On a plain connection the server closes after each of
// these answers; in a session it goes on.
//
// max-hold:S on any extension lock request caps the hold at its grant + S
// (or the server's own cap, the smaller); for a lease, renewing never moves
// its end past it. A session is told "lost,name:N,why:maximum hold of S
// reached"; another connection is closed. In a holders answer a party shows
// when the server will take it away ("expires") and a lease's fingerprint
// ("lease"), never its id.
//
// # Authentication and operators
//
// A server started with an auth token requires the key auth:TOKEN on the
// first request of every connection (lock, .session, .stats, .holders; .ping
// is exempt). Without it the answer is "err,authentication required" (or
// "err,authentication failed" for a wrong token) and the connection closes;
// legacy clients included. With an admin token:
//
//	.break,name:N,auth:ADMIN         -> released,name:N | err,name:N,not held |
//	                                    err,admin token required
//	.server-shutdown,auth:ADMIN      -> shutting-down (close; the server stops)
//
// Without the admin token .server-shutdown is answered "bad-action".
//
// # Bounds
//
// A line longer than the server's limit is answered "err,line too long" and the
// connection closed; so is a first line that does not arrive in time
// ("err,timeout waiting for request"), and a connection over the server's cap
// ("err,too many connections").
package protocol
