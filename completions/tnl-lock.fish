# fish completion for tnl-lock(1).
# Installed as share/fish/vendor_completions.d/tnl-lock.fish.

complete -c tnl-lock -f
complete -c tnl-lock -s s -l server -x -d 'Server to ask, HOST:PORT'
complete -c tnl-lock -l host -x -a '(__fish_print_hostnames)' -d 'Server host (tcpnetlock spelling)'
complete -c tnl-lock -l port -x -d 'Server port (tcpnetlock spelling)'
complete -c tnl-lock -l client-id -x -d 'Label shown by tnl-stats'
complete -c tnl-lock -s w -l wait -x -a '0 10s 30s 1m 5m 15m 1h inf' -d 'Wait for the lock up to DURATION'
complete -c tnl-lock -l shared -d 'Ask for a shared lock'
complete -c tnl-lock -l limit -x -d 'Semaphore: up to N holders'
complete -c tnl-lock -s E -l conflict-exit-code -x -d 'Exit status when not granted'
complete -c tnl-lock -l keep-alive -d 'Accepted for tcpnetlock, ignored'
complete -c tnl-lock -l keep-alive-secs -x -d 'Accepted for tcpnetlock, ignored'
complete -c tnl-lock -l lost-deadline -d 'When lost, print lost and exit at the kill deadline'
complete -c tnl-lock -s v -l verbose -d 'Say what happens on stderr'
complete -c tnl-lock -l auth-token-file -r -F -d 'Read the shared secret from FILE'
complete -c tnl-lock -l tls -d 'Talk TLS to the server (system CAs)'
complete -c tnl-lock -l tls-ca -r -F -d 'Trust the CAs in FILE for the server'
complete -c tnl-lock -l tls-cert -r -F -d 'Client certificate to present (PEM)'
complete -c tnl-lock -l tls-key -r -F -d 'Private key of --tls-cert (PEM)'
complete -c tnl-lock -s h -l help -d 'Show help and exit'
complete -c tnl-lock -l version -d 'Show the version and exit'
