#compdef tnl-stats
# zsh completion for tnl-stats(1). Installed as share/zsh/site-functions/_tnl-stats.

_arguments -s -S \
  '(-s --server)'{-s+,--server=}'[server to ask]:server (HOST\:PORT):' \
  '--host=[server host, tcpnetlock spelling]:host:_hosts' \
  '--port=[server port, tcpnetlock spelling]:port:' \
  '--json[print one JSON document]' \
  '--timeout=[give up on a server that does not answer within]:duration:(1s 3s 10s 30s)' \
  '--break=[break the lock NAME (operators)]:lock name:' \
  '--admin-token-file=[read the operator secret for --break from FILE]:secret file:_files' \
  '--auth-token-file=[read the shared secret from FILE]:secret file:_files' \
  '--tls[talk TLS to the server, trusting the system CAs]' \
  '--tls-ca=[trust the CAs in FILE for the server]:CA certificates (PEM):_files' \
  '--tls-cert=[client certificate to present]:certificate (PEM):_files' \
  '--tls-key=[private key of --tls-cert]:private key (PEM):_files' \
  '(- *)'{-h,--help}'[show help and exit]' \
  '(- *)--version[show the version and exit]' \
  '*:lock name:'
