# fish completion for tnl-stats(1).
# Installed as share/fish/vendor_completions.d/tnl-stats.fish.

complete -c tnl-stats -f
complete -c tnl-stats -s s -l server -x -d 'Server to ask, HOST:PORT'
complete -c tnl-stats -l host -x -a '(__fish_print_hostnames)' -d 'Server host (tcpnetlock spelling)'
complete -c tnl-stats -l port -x -d 'Server port (tcpnetlock spelling)'
complete -c tnl-stats -l json -d 'Print one JSON document'
complete -c tnl-stats -l timeout -x -a '1s 3s 10s 30s' -d 'Give up on a server that does not answer within'
complete -c tnl-stats -s h -l help -d 'Show help and exit'
complete -c tnl-stats -l version -d 'Show the version and exit'
