# fish completion for tnl-do(1).
# Installed as share/fish/vendor_completions.d/tnl-do.fish.

# True once COMMAND has begun: after "--", or after NAME's positional
# (the first positional is COMMAND itself when --lock-name is given).
function __tnl_do_command_at
    set -l tokens (commandline -opc)
    set -l want 2
    contains -- --lock-name $tokens; and set want 1
    set -l n 0
    set -l skip 0
    for i in (seq 2 (count $tokens))
        set -l t $tokens[$i]
        if test $skip -eq 1
            set skip 0
            continue
        end
        switch $t
            case --
                echo (math $i + 1)
                return 0
            case -s --server --host --port --client-id -w --wait --limit -E \
                --conflict-exit-code --on-lost --kill-after --lock-name --retry \
                --retry-wait --keep-alive-secs --auth-token-file --tls-ca --tls-cert \
                --tls-key --max-hold
                set skip 1
            case '-*'
            case '*'
                set n (math $n + 1)
                if test $n -ge $want
                    echo $i
                    return 0
                end
        end
    end
    set -l cur (commandline -ct)
    if test $skip -eq 0; and not string match -q -- '-*' $cur; and test (math $n + 1) -ge $want
        echo (math (count $tokens) + 1)
        return 0
    end
    return 1
end

function __tnl_do_in_command
    __tnl_do_command_at >/dev/null
end

# Complete COMMAND and its arguments with that command's own completions.
function __tnl_do_complete_command
    set -l at (__tnl_do_command_at); or return
    set -l tokens (commandline -opc)
    set -l words $tokens[$at..-1] (commandline -ct)
    complete -C (string join -- ' ' (string escape -- $words[1..-2]) $words[-1])
end

complete -c tnl-do -n __tnl_do_in_command -f -a '(__tnl_do_complete_command)'
complete -c tnl-do -n 'not __tnl_do_in_command' -f
complete -c tnl-do -n 'not __tnl_do_in_command' -s s -l server -x -d 'Server to ask, HOST:PORT'
complete -c tnl-do -n 'not __tnl_do_in_command' -l host -x -a '(__fish_print_hostnames)' -d 'Server host (tcpnetlock spelling)'
complete -c tnl-do -n 'not __tnl_do_in_command' -l port -x -d 'Server port (tcpnetlock spelling)'
complete -c tnl-do -n 'not __tnl_do_in_command' -l client-id -x -d 'Label shown by tnl-stats'
complete -c tnl-do -n 'not __tnl_do_in_command' -s w -l wait -x -a '0 10s 30s 1m 5m 15m 1h inf' -d 'Wait for the lock up to DURATION'
complete -c tnl-do -n 'not __tnl_do_in_command' -l shared -d 'Ask for a shared lock'
complete -c tnl-do -n 'not __tnl_do_in_command' -l limit -x -d 'Semaphore: up to N holders'
complete -c tnl-do -n 'not __tnl_do_in_command' -s E -l conflict-exit-code -x -d 'Exit status when not granted'
complete -c tnl-do -n 'not __tnl_do_in_command' -s c -l shell -d 'Run COMMAND with /bin/sh -c'
complete -c tnl-do -n 'not __tnl_do_in_command' -l on-lost -x -a 'term kill ignore' -d 'What to do when the lock is lost'
complete -c tnl-do -n 'not __tnl_do_in_command' -l kill-after -x -a '1s 5s 10s 30s' -d 'Grace between SIGTERM and SIGKILL'
complete -c tnl-do -n 'not __tnl_do_in_command' -l max-hold -x -a '30s 5m 15m 1h 2h 12h 24h' -d 'Hold the lock at most DURATION'
complete -c tnl-do -n 'not __tnl_do_in_command' -l lock-name -x -d 'Lock name (tcpnetlock spelling)'
complete -c tnl-do -n 'not __tnl_do_in_command' -l retry -x -d 'Tries after the first (tcpnetlock spelling)'
complete -c tnl-do -n 'not __tnl_do_in_command' -l retry-wait -x -d 'Seconds between tries'
complete -c tnl-do -n 'not __tnl_do_in_command' -l keep-alive -d 'Accepted for tcpnetlock, ignored'
complete -c tnl-do -n 'not __tnl_do_in_command' -l keep-alive-secs -x -d 'Accepted for tcpnetlock, ignored'
complete -c tnl-do -n 'not __tnl_do_in_command' -s v -l verbose -d 'Say what happens on stderr'
complete -c tnl-do -n 'not __tnl_do_in_command' -l auth-token-file -r -F -d 'Read the shared secret from FILE'
complete -c tnl-do -n 'not __tnl_do_in_command' -l tls -d 'Talk TLS to the server (system CAs)'
complete -c tnl-do -n 'not __tnl_do_in_command' -l tls-ca -r -F -d 'Trust the CAs in FILE for the server'
complete -c tnl-do -n 'not __tnl_do_in_command' -l tls-cert -r -F -d 'Client certificate to present (PEM)'
complete -c tnl-do -n 'not __tnl_do_in_command' -l tls-key -r -F -d 'Private key of --tls-cert (PEM)'
complete -c tnl-do -n 'not __tnl_do_in_command' -s h -l help -d 'Show help and exit'
complete -c tnl-do -n 'not __tnl_do_in_command' -l version -d 'Show the version and exit'
