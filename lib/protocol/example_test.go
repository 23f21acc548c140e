package protocol_test

import (
	"fmt"
	"time"

	"github.com/tnl-lock/tnl/lib/protocol"
)

// A client formats its requests into one buffer it reuses, and the server
// reads them back.
func ExampleAppendRequest() {
	var buf []byte
	buf = protocol.AppendRequest(buf[:0], protocol.Request{Action: protocol.ActLock, Name: "build", ClientID: "ci@host1"})
	fmt.Printf("%q\n", buf)
	buf = protocol.AppendRequest(buf[:0], protocol.Request{Action: protocol.ActLock, Name: "build", Wait: 90 * time.Second, Mode: protocol.Shared})
	fmt.Printf("%q\n", buf)
	r, err := protocol.ParseRequest(buf)
	fmt.Println(r.Name, r.Wait, r.Mode, r.Ext, err)
	// Output:
	// "lock,name:build,client-id:ci@host1\n"
	// "lock,name:build,wait:90,mode:shared\n"
	// build 1m30s shared true <nil>
}

// A lease: the server makes the id and sends it once; it keeps the key and
// shows the fingerprint. The client renews with the id.
func ExampleAppendLease() {
	id := "5f0c8e7a1b2d4c6e8f90a1b2c3d4e5f6" // protocol.NewLeaseID() on a server
	req, _ := protocol.ParseRequest([]byte("lock,name:nightly,ttl:2h\n"))
	fmt.Println(req.TTL, req.Ext)
	ans := protocol.AppendLease(nil, protocol.KindOK, "", 21, id, req.TTL)
	fmt.Printf("%q\n", ans)
	fmt.Println(protocol.LeaseFingerprint(protocol.LeaseKey(id)))
	rep, _ := protocol.ParseReply(ans)
	fmt.Printf("%q\n", protocol.AppendRequest(nil, protocol.Request{Action: protocol.ActRenew, Lease: rep.Lease, TTL: time.Hour}))
	fmt.Printf("%q\n", protocol.AppendLost(nil, "deploy", "maximum hold of 2s reached"))
	// Output:
	// 2h0m0s true
	// "ok,token:21,lease:5f0c8e7a1b2d4c6e8f90a1b2c3d4e5f6,ttl:7200\n"
	// 40e648f1
	// ".renew,lease:5f0c8e7a1b2d4c6e8f90a1b2c3d4e5f6,ttl:3600\n"
	// "lost,name:deploy,why:maximum hold of 2s reached\n"
}
