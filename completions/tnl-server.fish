# fish completion for tnl-server(1).
# Installed as share/fish/vendor_completions.d/tnl-server.fish.

complete -c tnl-server -f
complete -c tnl-server -l listen -x -d 'Address to listen on, HOST:PORT'
complete -c tnl-server -l port -x -d 'Port to listen on'
complete -c tnl-server -l state-dir -x -a '(__fish_complete_directories)' -d 'Directory for the fencing-token counter'
complete -c tnl-server -l dead-peer-timeout -x -a '10s 30s 1m 2m' -d "Release a vanished client's locks after"
complete -c tnl-server -l restart-grace -x -a '0 10s 30s 1m' -d 'No grants this long after a (re)start'
complete -c tnl-server -l first-line-timeout -x -a '5s 10s 30s' -d 'Time to send the first line'
complete -c tnl-server -l max-line-length -x -d 'Longest request line in bytes'
complete -c tnl-server -l max-conns -x -d 'Most connections at once, 0 for no cap'
complete -c tnl-server -l max-waiters -x -d 'Most waiters per name, 0 for no cap'
complete -c tnl-server -l max-session-locks -x -d 'Most locks held or awaited by one session, 0 for no cap'
complete -c tnl-server -l max-session-waits -x -d 'Most waits in one session, 0 for no cap'
complete -c tnl-server -l max-answer-bytes -x -d 'Longest .holders answer in bytes'
complete -c tnl-server -l max-hold -x -a '0 10m 1h 2h 24h' -d 'Take every lock away this long after its grant'
complete -c tnl-server -l auth-token-file -r -F -d 'Require the shared secret in FILE'
complete -c tnl-server -l admin-token-file -r -F -d 'Allow .break and .server-shutdown with the secret in FILE'
complete -c tnl-server -l tls-cert -r -F -d 'Serve TLS with this certificate (PEM)'
complete -c tnl-server -l tls-key -r -F -d 'Private key of --tls-cert (PEM)'
complete -c tnl-server -l tls-client-ca -r -F -d 'Require client certificates from these CAs (PEM)'
complete -c tnl-server -l log-format -x -a 'text json' -d 'Log line format'
complete -c tnl-server -l log-level -x -a 'debug info warn error' -d 'Least important level logged'
complete -c tnl-server -l info -d 'Log at level info (tcpnetlock spelling)'
complete -c tnl-server -l debug -d 'Log at level debug (tcpnetlock spelling)'
complete -c tnl-server -s h -l help -d 'Show help and exit'
complete -c tnl-server -l version -d 'Show the version and exit'
