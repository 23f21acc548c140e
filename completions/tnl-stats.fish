# fish completion for tnl-stats(1).
# Installed as share/fish/vendor_completions.d/tnl-stats.fish.

complete -c tnl-stats -f
complete -c tnl-stats -s s -l server -x -d 'Server to ask, HOST:PORT'
complete -c tnl-stats -l host -x -a '(__fish_print_hostnames)' -d 'Server host (tcpnetlock spelling)'
complete -c tnl-stats -l port -x -d 'Server port (tcpnetlock spelling)'
complete -c tnl-stats -l json -d 'Print one JSON document'
complete -c tnl-stats -l timeout -x -a '1s 3s 10s 30s' -d 'Give up on a server that does not answer within'
complete -c tnl-stats -l break -x -d 'Break the lock NAME (operators)'
complete -c tnl-stats -l admin-token-file -r -F -d 'Read the operator secret for --break from FILE'
complete -c tnl-stats -l auth-token-file -r -F -d 'Read the shared secret from FILE'
complete -c tnl-stats -l tls -d 'Talk TLS to the server (system CAs)'
complete -c tnl-stats -l tls-ca -r -F -d 'Trust the CAs in FILE for the server'
complete -c tnl-stats -l tls-cert -r -F -d 'Client certificate to present (PEM)'
complete -c tnl-stats -l tls-key -r -F -d 'Private key of --tls-cert (PEM)'
complete -c tnl-stats -s h -l help -d 'Show help and exit'
complete -c tnl-stats -l version -d 'Show the version and exit'
