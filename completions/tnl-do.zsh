#compdef tnl-do
# zsh completion for tnl-do(1). Installed as share/zsh/site-functions/_tnl-do.

local -a args
args=(
  '(-s --server)'{-s+,--server=}'[server to ask]:server (HOST\:PORT):'
  '--host=[server host, tcpnetlock spelling]:host:_hosts'
  '--port=[server port, tcpnetlock spelling]:port:'
  '--client-id=[label shown by tnl-stats]:client id:'
  '(-w --wait)'{-w+,--wait=}'[wait for the lock up to DURATION]:duration (30s, 5m, 2, inf):(0 10s 30s 1m 5m 15m 1h inf)'
  '--shared[ask for a shared lock]'
  '--limit=[semaphore: up to N holders]:holders:'
  '(-E --conflict-exit-code)'{-E+,--conflict-exit-code=}'[exit status when not granted]:status:'
  '(-c --shell)'{-c,--shell}'[run COMMAND with /bin/sh -c]'
  '--on-lost=[what to do when the lock is lost]:action:(term kill ignore)'
  '--kill-after=[grace between SIGTERM and SIGKILL]:duration:(1s 5s 10s 30s)'
  '--max-hold=[hold the lock at most DURATION]:duration (1h, 30m):(30s 5m 15m 1h 2h 12h 24h)'
  '--lock-name=[lock name, tcpnetlock spelling]:lock name:'
  '--retry=[tries after the first, tcpnetlock spelling]:tries:'
  '--retry-wait=[seconds between tries]:seconds:'
  '--keep-alive[accepted for tcpnetlock, ignored]'
  '--keep-alive-secs=[accepted for tcpnetlock, ignored]:seconds:'
  '(-v --verbose)'{-v,--verbose}'[say what happens on stderr]'
  '--auth-token-file=[read the shared secret from FILE]:secret file:_files'
  '--tls[talk TLS to the server, trusting the system CAs]'
  '--tls-ca=[trust the CAs in FILE for the server]:CA certificates (PEM):_files'
  '--tls-cert=[client certificate to present]:certificate (PEM):_files'
  '--tls-key=[private key of --tls-cert]:private key (PEM):_files'
  '(- *)'{-h,--help}'[show help and exit]'
  '(- *)--version[show the version and exit]'
)
# With --lock-name the first argument is already the command.
if (( ! ${words[(I)--lock-name(|=*)]} )); then
  args+=('1:lock name:')
fi
args+=('*:::command:_normal')
_arguments -s -S $args
