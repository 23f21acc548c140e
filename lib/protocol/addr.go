package protocol

// DefaultPort is tnl-server's port unless told otherwise: tcpnetlock's, so
// that its clients find tnl-server where they found tcpnetlock.
const DefaultPort = 7654

// DefaultHost is where the commands look for the server, and where
// tnl-server listens, unless told otherwise: this host only, so that a
// server nobody configured is not open to the network.
const DefaultHost = "127.0.0.1"

// DefaultAddr is DefaultHost:DefaultPort. (A constant cannot call
// strconv; TestDefaultAddr keeps the port's two spellings in step.)
const DefaultAddr = DefaultHost + ":7654"
