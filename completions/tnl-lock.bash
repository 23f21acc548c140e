# bash completion for tnl-lock(1)                            -*- shell-script -*-
# shellcheck shell=bash
#
# Installed as share/bash-completion/completions/tnl-lock, where bash-completion
# loads it the first time tnl-lock is completed; or source it from ~/.bashrc.

_tnl_lock()
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
        -w|--wait)
            mapfile -t COMPREPLY < <(compgen -W '0 10s 30s 1m 5m 15m 1h inf' -- "$cur")
            return 0 ;;
        --ttl|--max-hold)
            mapfile -t COMPREPLY < <(compgen -W '30s 5m 15m 1h 2h 12h 24h' -- "$cur")
            return 0 ;;
        --host)
            mapfile -t COMPREPLY < <(compgen -A hostname -- "$cur")
            return 0 ;;
        --auth-token-file|--tls-ca|--tls-cert|--tls-key)
            compopt -o filenames 2>/dev/null
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
            return 0 ;;
        -s|--server|--port|--client-id|--limit|-E|--conflict-exit-code|\
        --keep-alive-secs|--lease)
            return 0 ;;
    esac

    if [[ $cur == -* ]]; then
        local opts='--server --host --port --client-id --wait --shared --limit
            --conflict-exit-code --keep-alive --keep-alive-secs --lost-deadline --verbose
            --ttl --max-hold --renew --release --is-held --lease
            --auth-token-file --tls --tls-ca --tls-cert --tls-key
            --help --version'
        [[ $cur == -- || $cur == --?* ]] || opts+=' -s -w -E -v -h'
        mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
    fi
    return 0
}
complete -F _tnl_lock tnl-lock
