# bash completion for tnl-stats(1)                           -*- shell-script -*-
# shellcheck shell=bash
#
# Installed as share/bash-completion/completions/tnl-stats, where
# bash-completion loads it the first time tnl-stats is completed; or source it
# from ~/.bashrc.

_tnl_stats()
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
        --host)
            mapfile -t COMPREPLY < <(compgen -A hostname -- "$cur")
            return 0 ;;
        --auth-token-file|--admin-token-file|--tls-ca|--tls-cert|--tls-key)
            compopt -o filenames 2>/dev/null
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
            return 0 ;;
        --timeout)
            mapfile -t COMPREPLY < <(compgen -W '1s 3s 10s 30s' -- "$cur")
            return 0 ;;
        -s|--server|--port|--break)
            return 0 ;;
    esac

    if [[ $cur == -* ]]; then
        local opts='--server --host --port --json --timeout --break
            --admin-token-file --auth-token-file --tls --tls-ca --tls-cert
            --tls-key --help --version'
        [[ $cur == -- || $cur == --?* ]] || opts+=' -s -h'
        mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
    fi
    return 0
}
complete -F _tnl_stats tnl-stats
