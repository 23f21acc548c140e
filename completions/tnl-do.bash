# bash completion for tnl-do(1)                              -*- shell-script -*-
# shellcheck shell=bash
#
# Installed as share/bash-completion/completions/tnl-do, where bash-completion
# loads it the first time tnl-do is completed; or source it from ~/.bashrc.
# Works with plain bash as well: bash-completion is used when it is there
# (to complete the command after NAME with that command's own completion).

_tnl_do()
{
    local cur prev opt i word nargs=0 cmd_at=0 lock_name=0
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

    # Find where COMMAND starts: after "--", or after NAME's positional.
    for (( i = 1; i <= COMP_CWORD; i++ )); do
        word=${COMP_WORDS[i]}
        (( i == COMP_CWORD )) && word=$cur
        if [[ $word == -- ]] && (( i < COMP_CWORD )); then
            cmd_at=$(( i + 1 )); break
        fi
        case $word in
            --lock-name) lock_name=1 ;;
        esac
        case $word in
            -s|--server|--host|--port|--client-id|-w|--wait|--limit|-E|\
            --conflict-exit-code|--on-lost|--kill-after|--lock-name|--retry|\
            --retry-wait|--keep-alive-secs|--auth-token-file|--tls-ca|\
            --tls-cert|--tls-key|--max-hold)
                [[ ${COMP_WORDS[i+1]-} == = ]] && i=$(( i + 1 ))
                i=$(( i + 1 )) ;;
            =|-*) ;;
            *)
                nargs=$(( nargs + 1 ))
                if (( nargs > 1 - lock_name )); then
                    cmd_at=$i; break
                fi ;;
        esac
    done

    if (( cmd_at > 0 && COMP_CWORD >= cmd_at )); then
        if declare -F _comp_command_offset >/dev/null; then
            _comp_command_offset "$cmd_at"
        elif declare -F _command_offset >/dev/null; then
            _command_offset "$cmd_at"
        elif (( COMP_CWORD == cmd_at )); then
            mapfile -t COMPREPLY < <(compgen -c -- "$cur")
        else
            compopt -o filenames 2>/dev/null
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        fi
        return 0
    fi

    case $opt in
        --on-lost)
            mapfile -t COMPREPLY < <(compgen -W 'term kill ignore' -- "$cur")
            return 0 ;;
        -w|--wait)
            mapfile -t COMPREPLY < <(compgen -W '0 10s 30s 1m 5m 15m 1h inf' -- "$cur")
            return 0 ;;
        --kill-after)
            mapfile -t COMPREPLY < <(compgen -W '1s 5s 10s 30s' -- "$cur")
            return 0 ;;
        --max-hold)
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
        --lock-name|--retry|--retry-wait|--keep-alive-secs)
            return 0 ;;
    esac

    if [[ $cur == -* ]]; then
        local opts='--server --host --port --client-id --wait --shared --limit
            --conflict-exit-code --shell --on-lost --kill-after --lock-name
            --retry --retry-wait --keep-alive --keep-alive-secs --verbose
            --max-hold --auth-token-file --tls --tls-ca --tls-cert --tls-key
            --help --version --'
        [[ $cur == -- || $cur == --?* ]] || opts+=' -s -w -E -c -v -h'
        mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
    fi
    return 0
}
complete -F _tnl_do tnl-do
