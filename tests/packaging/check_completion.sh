#!/usr/bin/env bash
# The generated shell completion offers every subcommand, every option that
# --help shows and every value word, and each value word it offers is one the
# binary accepts.
#   check_completion.sh TCPTRAIL BASH_COMPLETION ZSH_COMPLETION
# bash: sources the script, checks `complete -p`, then drives the completion
# function with COMP_WORDS/COMP_CWORD as readline would. zsh: loads the
# function through the real compinit and reads the specs it gives
# _arguments. The expected names come from `tcptrail _cli json` (the CLI11
# definition, itself checked against --help by check_man.py).
set -euo pipefail
bin=$1 bash_file=$2 zsh_file=$3
failures=0
fail() {
  echo "check_completion: $*"
  failures=$((failures + 1))
}
spec=$("$bin" _cli json)
jq_py() { python3 -c "import json,sys; spec=json.load(sys.stdin); $1" <<<"$spec"; }
program=$(jq_py 'print(spec["program"])')
mapfile -t subs < <(jq_py 'print("\n".join(c["name"] for c in spec["commands"]))')
# lines: "<subcommand, . for the program>\t<name>\t<values or ->"
options=$(jq_py '
for c in [{"name": "", "options": spec["options"]}] + spec["commands"]:
    for o in c["options"]:
        for n in o["names"]:
            print((c["name"] or ".") + "\t" + n + "\t" + (" ".join(o["values"]) if o["takes_value"] else "-"))')

# ---- bash
complete_in_bash() { # WORDS... : prints the candidates for the last word
  bash --norc --noprofile -c '
    source "$1"; shift
    COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    spec=$(complete -p tcptrail) || exit 3
    [[ $spec == *"-F _tcptrail tcptrail"* ]] || exit 4
    _tcptrail
    printf "%s\n" "${COMPREPLY[@]}"' _ "$bash_file" "$@"
}
got=$(complete_in_bash "$program" "") || fail "bash: no 'complete -F _tcptrail tcptrail'"
for s in "${subs[@]}"; do
  grep -qxF -- "$s" <<<"$got" || fail "bash: '$program <TAB>' lacks subcommand $s"
done
grep -qxF -- "_cli" <<<"$got" && fail "bash: offers the hidden _cli"
declare -A offered=()
while IFS=$'\t' read -r sub name values; do
  [[ $sub == . ]] && sub=
  key=${sub:-.}
  if [[ -z ${offered[$key]+x} ]]; then
    if [[ -n $sub ]]; then
      offered[$key]=$(complete_in_bash "$program" "$sub" "-")
    else
      offered[$key]=$(complete_in_bash "$program" "-")
    fi
  fi
  grep -qxF -- "$name" <<<"${offered[$key]}" ||
    fail "bash: '$program $sub -<TAB>' lacks $name"
  [[ $values == - || -z $values ]] && continue
  words=()
  [[ -n $sub ]] && words=("$sub")
  got=$(complete_in_bash "$program" "${words[@]}" "$name" "")
  for v in $values; do
    grep -qxF -- "$v" <<<"$got" || fail "bash: '$program $sub $name <TAB>' lacks $v"
    # The binary accepts the word (a bad value fails the parse, exit 2,
    # before --version exits 0).
    "$bin" "${words[@]}" "$name" "$v" --version >/dev/null 2>&1 ||
      fail "'$program $sub $name $v' is offered but refused"
  done
  "$bin" "${words[@]}" "$name" "no-such-value" --version >/dev/null 2>&1 &&
    fail "'$program $sub $name no-such-value' accepted: the value check above proves nothing"
done <<<"$options"
# The state names: the whole TCP state table.
got=$(complete_in_bash "$program" trace --state "")
[[ $(wc -l <<<"$got") -eq 12 ]] || fail "bash: --state offers $(wc -l <<<"$got") names, not the 12 TCP states"

# ---- zsh
if command -v zsh >/dev/null; then
  zhome=$(mktemp -d)
  trap 'rm -rf "$zhome"' EXIT
  mkdir "$zhome/fpath"
  cp "$zsh_file" "$zhome/fpath/_tcptrail"
  zout=$(HOME=$zhome ZDOTDIR=$zhome zsh -f -c '
    fpath=("$1" $fpath)
    autoload -Uz compinit && compinit -u -d "$HOME/.zcompdump" || exit 3
    [[ ${_comps[tcptrail]} == _tcptrail ]] || exit 4
    # Load the function body (defines the option arrays) without completing.
    autoload +X _tcptrail && functions _tcptrail >/dev/null || exit 5
    source "$1/_tcptrail" 2>/dev/null
    for a in ${(k)parameters[(I)_tcptrail_*]}; do
      for e in "${(@P)a}"; do print -r -- "$a	$e"; done
    done' _ "$zhome/fpath" 2>&1) || fail "zsh: compinit did not register _tcptrail for tcptrail ($?): $zout"
  for s in "${subs[@]}"; do
    grep -qF -- "_tcptrail_commands	$s:" <<<"$zout" || fail "zsh: lacks subcommand $s"
  done
  while IFS=$'\t' read -r sub name values; do
    [[ $sub == . ]] && sub=
    arr=_tcptrail_opts${sub:+_${sub//[^[:alnum:]]/_}}
    line=$(grep -F -- "$arr	*$name[" <<<"$zout" || true)
    [[ -n $line ]] || { fail "zsh: $arr lacks $name"; continue; }
    [[ $values == - || -z $values ]] && continue
    list=${line##*:(}
    list=" ${list%)} "
    for v in $values; do
      [[ $list == *" $v "* ]] || fail "zsh: $name does not offer $v"
    done
  done <<<"$options"
  # Real completion in an interactive zsh: what a user sees after TAB TAB.
  lines=("$program ")
  for s in "${subs[@]}"; do lines+=("$program $s -"); done
  lines+=("$program trace --state ")
  screen=$(timeout 120 zsh -f "$(dirname "$0")/zsh_drive.zsh" "$zhome/fpath" "${lines[@]}" |
    sed 's/\x1b\[[0-9;?]*[A-Za-z]//g' | tr -d '\r\b') || fail "zsh: the interactive session failed"
  shown() { # LINE: what the terminal showed after LINE + TAB TAB
    awk -v l="==LINE== $1" '$0 == l {on = 1; next} /^==LINE== / {on = 0} on' <<<"$screen"
  }
  got=$(shown "$program ")
  for s in "${subs[@]}"; do
    grep -qE "(^| )$s +-- " <<<"$got" || fail "zsh: '$program <TAB><TAB>' does not list $s"
  done
  while IFS=$'\t' read -r sub name values; do
    [[ $sub == . ]] && continue
    grep -qE -- "(^| )$name( |$)" <<<"$(shown "$program $sub -")" ||
      fail "zsh: '$program $sub -<TAB><TAB>' does not list $name"
  done <<<"$options"
  got=$(shown "$program trace --state ")
  for st in ESTABLISHED SYN_SENT SYN_RECV FIN_WAIT1 FIN_WAIT2 TIME_WAIT CLOSE \
    CLOSE_WAIT LAST_ACK LISTEN CLOSING NEW_SYN_RECV; do
    grep -qE "(^| )$st( |$)" <<<"$got" || fail "zsh: '--state <TAB><TAB>' does not list $st"
  done
else
  fail "zsh not installed"
fi

n=$(wc -l <<<"$options")
echo "check_completion: ${#subs[@]} subcommands, $n option names, $failures failures"
((failures == 0))
