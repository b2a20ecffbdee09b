# bash completion for kdeploy and its daemons. Installed as
# share/bash-completion/completions/kdeploy (and linked for the others).

_kdeploy_ids() {
    # Deployment ids from `kdeploy list --json`, quietly: completion must
    # never hang or print when no broker answers.
    timeout 3 kdeploy list --json --limit 50 2>/dev/null |
        grep -o '"deploy_id": *"[^"]*"' | sed 's/.*"\([^"]*\)"$/\1/'
}

_kdeploy() {
    local cur prev words cword
    _init_completion || return

    local commands="create rollback stop pause resume status watch list hosts group
                    replay dashboard broker validate keygen"
    local global="--brokers --brokers-file --config --topic-prefix -X --log-level
                  --log-json --json --verbose --help --version"
    local cmd="" i
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
        --brokers | --brokers-file | --config | --topic-prefix | -X | --log-level) ((i++)) ;;
        -*) ;;
        *) cmd=${words[i]}; break ;;
        esac
    done

    case $prev in
    -f | --file | --config | --brokers-file) _filedir '@(yaml|yml)'; return ;;
    --log-level) COMPREPLY=($(compgen -W "error warn info debug" -- "$cur")); return ;;
    --brokers | --topic-prefix | -X | --reason | --timeout | --limit | --label | \
        --revision | --sha256 | --listen | --metrics-listen) return ;;
    esac

    if [[ -z $cmd ]]; then
        COMPREPLY=($(compgen -W "$commands $global" -- "$cur"))
        return
    fi
    local opts=""
    case $cmd in
    create) opts="-f --file --group --revision --sha256 --label --wait --dry-run --timeout" ;;
    rollback) opts="--reason --wait --timeout" ;;
    stop) opts="--rollback --reason --wait --timeout" ;;
    pause | resume) opts="--wait --timeout" ;;
    status | replay) opts="" ;;
    watch) opts="--timeout" ;;
    list) opts="--limit" ;;
    hosts) opts="--label" ;;
    group) opts="set list show delete -f --file" ;;
    dashboard) opts="--listen --history-mb --metrics-listen" ;;
    broker) opts="--partitions --broker-count" ;;
    validate) opts="--strict"; [[ $cur != -* ]] && { _filedir; return; } ;;
    keygen) _filedir pem; return ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts $global" -- "$cur"))
    elif [[ $cmd =~ ^(rollback|stop|pause|resume|status|watch|replay)$ ]]; then
        COMPREPLY=($(compgen -W "$(_kdeploy_ids)" -- "$cur"))
    elif [[ $cmd == group ]]; then
        COMPREPLY=($(compgen -W "set list show delete" -- "$cur"))
    fi
}
complete -F _kdeploy kdeploy

_kdeploy_daemon() {
    local cur prev words cword
    _init_completion || return
    case $prev in
    --config | --brokers-file | --verify-key | --signing-key | --command) _filedir; return ;;
    --root | --install-prefix | --state-dir) _filedir -d; return ;;
    esac
    [[ $cur == -* ]] || return
    COMPREPLY=($(compgen -W "$("$1" --help 2>/dev/null | grep -o -- '--[a-z-]*' | sort -u)" \
        -- "$cur"))
}
complete -F _kdeploy_daemon kdeploy-worker kdeploy-planner kdeploy-lbctl kdeploy-fleetsim
