#compdef tnl-lock
# zsh completion for tnl-lock(1). Installed as share/zsh/site-functions/_tnl-lock.

_arguments -s -S \
  '(-s --server)'{-s+,--server=}'[server to ask]:server (HOST\:PORT):' \
  '--host=[server host, tcpnetlock spelling]:host:_hosts' \
  '--port=[server port, tcpnetlock spelling]:port:' \
  '--client-id=[label shown by tnl-stats]:client id:' \
  '(-w --wait)'{-w+,--wait=}'[wait for the lock up to DURATION]:duration (30s, 5m, 2, inf):(0 10s 30s 1m 5m 15m 1h inf)' \
  '--shared[ask for a shared lock]' \
  '--limit=[semaphore: up to N holders]:holders:' \
  '(-E --conflict-exit-code)'{-E+,--conflict-exit-code=}'[exit status when not granted]:status:' \
  '--keep-alive[accepted for tcpnetlock, ignored]' \
  '--keep-alive-secs=[accepted for tcpnetlock, ignored]:seconds:' \
  '--lost-deadline[when lost, print lost and exit at the kill deadline]' \
  '--ttl=[take a lease of DURATION (with --renew: the new TTL)]:duration (2h, 30m):(30s 5m 15m 1h 2h 12h 24h)' \
  '--max-hold=[hold the lock at most DURATION]:duration (1h, 30m):(30s 5m 15m 1h 2h 12h 24h)' \
  '(--release --is-held)--renew[renew the lease (--lease, else $TNL_LEASE)]' \
  '(--renew --is-held)--release[release the lease (--lease, else $TNL_LEASE)]' \
  '(--renew --release)--is-held[exit 0 when the lease is held, 122 when not]' \
  '--lease=[lease id for --renew, --release, --is-held]:lease id:' \
  '(-v --verbose)'{-v,--verbose}'[say what happens on stderr]' \
  '--auth-token-file=[read the shared secret from FILE]:secret file:_files' \
  '--tls[talk TLS to the server, trusting the system CAs]' \
  '--tls-ca=[trust the CAs in FILE for the server]:CA certificates (PEM):_files' \
  '--tls-cert=[client certificate to present]:certificate (PEM):_files' \
  '--tls-key=[private key of --tls-cert]:private key (PEM):_files' \
  '(- *)'{-h,--help}'[show help and exit]' \
  '(- *)--version[show the version and exit]' \
  '1:lock name:'
