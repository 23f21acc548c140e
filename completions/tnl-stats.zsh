#compdef tnl-stats
# zsh completion for tnl-stats(1). Installed as share/zsh/site-functions/_tnl-stats.

_arguments -s -S \
  '(-s --server)'{-s+,--server=}'[server to ask]:server (HOST\:PORT):' \
  '--host=[server host, tcpnetlock spelling]:host:_hosts' \
  '--port=[server port, tcpnetlock spelling]:port:' \
  '--json[print one JSON document]' \
  '--timeout=[give up on a server that does not answer within]:duration:(1s 3s 10s 30s)' \
  '(- *)'{-h,--help}'[show help and exit]' \
  '(- *)--version[show the version and exit]' \
  '*:lock name:'
