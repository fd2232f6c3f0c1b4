# zsh_drive.zsh DIR LINE...: starts an interactive zsh in a pseudo-terminal
# (zpty) with compinit and DIR/_tcptrail on $fpath, types each LINE and two
# TABs, and prints "==LINE== LINE" and what the terminal then shows.
# check_completion.sh reads it: real completion, as a user would see it.
zmodload zsh/zpty
dir=$1; shift
zpty -b z "HOME=$dir zsh -f -i"
zpty -w z "PS1='%% '; fpath=($dir \$fpath); autoload -Uz compinit; compinit -u -D; LISTMAX=10000; unsetopt beep; function tcptrail { }"
drain() { local chunk; REPLY=; sleep ${1:-1}; while zpty -r -t z chunk; do REPLY+=$chunk; done }
drain 2
for l in "$@"; do
  zpty -w -n z "$l"$'\t\t'
  drain 1.5
  print -r -- "==LINE== $l"
  print -r -- $REPLY
  zpty -w -n z $'\C-e\C-u'
  drain 0.5
done
zpty -d z
