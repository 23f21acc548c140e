#compdef tnl-server
# zsh completion for tnl-server(1). Installed as share/zsh/site-functions/_tnl-server.

_arguments -s -S \
  '--listen=[address to listen on]:address (HOST\:PORT):' \
  '--port=[port to listen on]:port:' \
  '--state-dir=[directory for the fencing-token counter]:directory:_directories' \
  '--dead-peer-timeout=[release a vanished client'\''s locks after]:duration:(10s 30s 1m 2m)' \
  '--restart-grace=[no grants this long after a (re)start]:duration:(0 10s 30s 1m)' \
  '--first-line-timeout=[time to send the first line]:duration:(5s 10s 30s)' \
  '--max-line-length=[longest request line in bytes]:bytes:' \
  '--max-conns=[most connections at once, 0 for no cap]:connections:' \
  '--max-waiters=[most waiters per name, 0 for no cap]:waiters:' \
  '--max-session-locks=[most locks held or awaited by one session, 0 for no cap]:locks:' \
  '--max-session-waits=[most waits in one session, 0 for no cap]:waits:' \
  '--max-answer-bytes=[longest .holders answer in bytes]:bytes:' \
  '--max-hold=[take every lock away this long after its grant]:duration:(0 10m 1h 2h 24h)' \
  '--auth-token-file=[require the shared secret in FILE]:secret file:_files' \
  '--admin-token-file=[allow .break and .server-shutdown with the secret in FILE]:secret file:_files' \
  '--tls-cert=[serve TLS with this certificate (PEM)]:certificate:_files' \
  '--tls-key=[private key of --tls-cert (PEM)]:key:_files' \
  '--tls-client-ca=[require client certificates from these CAs (PEM)]:CA file:_files' \
  '--log-format=[log line format]:format:(text json)' \
  '--log-level=[least important level logged]:level:(debug info warn error)' \
  '--info[log at level info, tcpnetlock spelling]' \
  '--debug[log at level debug, tcpnetlock spelling]' \
  '(- *)'{-h,--help}'[show help and exit]' \
  '(- *)--version[show the version and exit]'
