package test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nsLegacyHolder is a tcpnetlock-style holder on a raw TCP connection, as
// tcpnetlock's tnl_client makes it: "lock,name:NAME" answered "ok", then
// nothing unless told. Each line "keepalive" on its standard input makes it
// send ".keepalive" (tnl_client --keep-alive does that) without reading the
// answer. It prints "lock: ANSWER" and "sent".
const nsLegacyHolder = `exec 3<>"/dev/tcp/$1/$2" || exit 1
printf 'lock,name:%s\n' "$3" >&3
IFS= read -r line <&3
echo "lock: $line"
while IFS= read -r cmd; do
	[[ $cmd == keepalive ]] && printf '.keepalive\n' >&3 && echo sent
done
`

const nsCutInRules = `table inet tnlcutin {
	chain in { type filter hook input priority -300; policy drop; iif "lo" accept; }
}
`

// cutIn drops every packet into ns (except on its loopback) and lets its
// own packets out: the host can still talk but no longer hears anything.
func (l *nsLab) cutIn(ns string) error {
	switch l.How {
	case "nft":
		return nsNft(ns, nsCutInRules)
	case "iptables":
		return nsDrop(ns, "INPUT")
	}
	return fmt.Errorf("a one-way cut needs nft or iptables (cut by %s)", l.How)
}

// serverSockets is what ss says, in the server's namespace, about the
// established connections to dst: one line per socket and one of TCP
// details (unacked:N when sent data awaits its acknowledgement).
func (l *nsLab) serverSockets(dst string) string {
	out, err := exec.Command("ip", "netns", "exec", l.Server, "ss", "-tni", "state", "established", "dst", dst).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("ss: %v: %s", err, out)
	}
	return string(out)
}

// TestNetnsLegacyHolderVanishes: a legacy (tcpnetlock) holder sends nothing
// while it holds, so only TCP itself can tell the server that its host
// vanished (CONTRACT.md §1.1, §4). The server must free the lock within
// --dead-peer-timeout (+1s) either way:
//
//   - idle: nothing in flight when the host vanishes; keepalive probes go
//     unanswered (keepalive, bounded by TCP_USER_TIMEOUT).
//   - unacked: the host vanishes just after it sent ".keepalive", so the
//     server's "alive" is never acknowledged. While sent data waits for its
//     acknowledgement the kernel sends no keepalive probes at all; only
//     TCP_USER_TIMEOUT ends the connection before the kernel's own limit,
//     about 15 minutes of retransmissions (tcp_retries2). ss in the server's
//     namespace shows the unacknowledged data before the host vanishes
//     entirely.
//
// A probe waiting in the server's namespace is granted the lock. The time is
// measured from the cut (idle; the kernel counts from the last packet heard,
// a little earlier) or from the ".keepalive" (unacked; a little before the
// server sent its answer). A server that keeps the lock fails the test at
// 3 × the timeout, with what ss says about the connection.
func TestNetnsLegacyHolderVanishes(t *testing.T) {
	const deadPeer = 4 * time.Second
	for _, inFlight := range []bool{false, true} {
		name := "idle"
		if inFlight {
			name = "unacked"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			lab := newNSLab(t, 1)
			client, clientIP := lab.Clients[0], strings.TrimSuffix(lab.ServerIP[0], ".1")+".2"
			if inFlight && lab.How == "link" {
				t.Skip("netns: skipped: a one-way cut needs nft or iptables")
			}
			srv := chaosStartServer(t, lab.Exec(lab.Server), "--listen", lab.ServerIP[0]+":0", "--dead-peer-timeout", deadPeer.String())
			holder := nsStart(t, append(lab.Exec(client), "bash", "-c", nsLegacyHolder, "holder", lab.ServerIP[0], srv.Port(), "legacy"))
			if _, ok := holder.Expect("out", "lock: ok", 10*time.Second); !ok {
				t.Fatalf("the legacy holder was not granted the lock:\n%s\nserver:\n%s", holder.Output(), srv.Log())
			}
			probe := nsStart(t, append(lab.Exec(lab.Server), filepath.Join(bins(t), "tnl-lock"), "-v", "-w", "inf", "-s", srv.Addr, "legacy"))
			if _, ok := probe.Expect("err", "waiting for legacy", 10*time.Second); !ok {
				t.Fatalf("the probe did not queue:\n%s", probe.Output())
			}

			var t0 time.Time
			if inFlight {
				if err := lab.cutIn(client); err != nil {
					t.Fatal(err)
				}
				t0 = time.Now()
				if _, err := holder.stdin.Write([]byte("keepalive\n")); err != nil {
					t.Fatal(err)
				}
				if _, ok := holder.Expect("out", "sent", 5*time.Second); !ok {
					t.Fatalf("the holder did not send .keepalive:\n%s", holder.Output())
				}
				var ss string
				if !chaosWait(2*time.Second, func() bool {
					ss = lab.serverSockets(clientIP)
					return strings.Contains(ss, "unacked:")
				}) {
					t.Fatalf("no unacknowledged data on the server's side of the holder's connection:\n%s", ss)
				}
				t.Logf("server side before the host vanished:\n%s", ss)
			} else {
				if ss := lab.serverSockets(clientIP); strings.Contains(ss, "unacked:") || !strings.Contains(ss, clientIP) {
					t.Fatalf("want one idle connection from the holder, ss says:\n%s", ss)
				}
				t0 = time.Now()
			}
			if err := lab.Cut(client); err != nil {
				t.Fatal(err)
			}

			grant, ok := probe.Expect("out", "", 3*deadPeer)
			if !ok {
				t.Fatalf("%s: the vanished legacy holder still held the lock %v later (--dead-peer-timeout %v; TCP_USER_TIMEOUT not set?):\nserver side:\n%s\nprobe:\n%s\nserver log:\n%s",
					name, 3*deadPeer, deadPeer, lab.serverSockets(clientIP), probe.Output(), srv.Log())
			}
			released := grant.at.Sub(t0)
			msg := fmt.Sprintf("netns: legacy holder vanished (%s): server released after %s (timeout %s); cut by %s", name, secs(released), secs(deadPeer), lab.How)
			t.Log(msg)
			fmt.Println(msg)
			if released > deadPeer+time.Second {
				t.Errorf("the server freed the lock %v after the holder vanished, more than --dead-peer-timeout %v + 1s", released, deadPeer)
			}
			probe.stdin.Close()
			if code, ok := probe.Wait(10 * time.Second); !ok || code != 0 {
				t.Errorf("the probe: exited %v, status %d, want 0:\n%s", ok, code, probe.Output())
			}
		})
	}
}
