# bash completion for tnl-server(1)                          -*- shell-script -*-
# shellcheck shell=bash
#
# Installed as share/bash-completion/completions/tnl-server, where
# bash-completion loads it the first time tnl-server is completed; or source it
# from ~/.bashrc.

_tnl_server()
{
    local cur prev opt
    COMPREPLY=()
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}

    # --flag=value arrives as three words when '=' is in COMP_WORDBREAKS.
    opt=$prev
    if [[ $cur == = ]]; then
        cur=''
    elif [[ $prev == = ]] && (( COMP_CWORD > 1 )); then
        opt=${COMP_WORDS[COMP_CWORD-2]}
    fi

    case $opt in
        --log-format)
            mapfile -t COMPREPLY < <(compgen -W 'text json' -- "$cur")
            return 0 ;;
        --log-level)
            mapfile -t COMPREPLY < <(compgen -W 'debug info warn error' -- "$cur")
            return 0 ;;
        --state-dir)
            compopt -o filenames 2>/dev/null
            mapfile -t COMPREPLY < <(compgen -d -- "$cur")
            return 0 ;;
        --auth-token-file|--admin-token-file|--tls-cert|--tls-key|--tls-client-ca)
            compopt -o filenames 2>/dev/null
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
            return 0 ;;
        --dead-peer-timeout|--first-line-timeout|--restart-grace)
            mapfile -t COMPREPLY < <(compgen -W '5s 10s 30s 1m 2m' -- "$cur")
            return 0 ;;
        --max-hold)
            mapfile -t COMPREPLY < <(compgen -W '0 10m 1h 2h 24h' -- "$cur")
            return 0 ;;
        --listen|--port|--max-line-length|--max-conns|--max-waiters|--max-session-locks|--max-session-waits|--max-answer-bytes)
            return 0 ;;
    esac

    if [[ $cur == -* ]]; then
        local opts='--listen --port --state-dir --dead-peer-timeout --restart-grace
            --first-line-timeout --max-line-length --max-conns --max-waiters
            --max-session-locks --max-session-waits --max-answer-bytes --max-hold
            --auth-token-file --admin-token-file --tls-cert --tls-key
            --tls-client-ca --log-format --log-level --info --debug --help
            --version'
        [[ $cur == -- || $cur == --?* ]] || opts+=' -h'
        mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
    fi
    return 0
}
complete -F _tnl_server tnl-server
