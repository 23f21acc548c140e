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
