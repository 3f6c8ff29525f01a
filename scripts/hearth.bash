# hearth.bash — bash key binding for hearth's shell helper (docs/shell.md).
#
# Source it from ~/.bashrc:
#     source /usr/share/hearth/hearth.bash      # installed
#     source ~/src/hearth/scripts/hearth.bash   # from a checkout
# Then write what you want to do on the prompt line, in words, and press
# Ctrl-X Ctrl-A: the line is sent to `hearth cmd --print` and replaced by the
# proposed command, to edit and run with Enter as usual (or not). Nothing
# runs on its own. The risk rating of a command that is not safe is printed
# above the prompt.
#
# Settings (before sourcing): HEARTH_KEY, the key in readline's syntax
# (default "\C-x\C-a"); HEARTH_BIN, the hearth command (default: hearth on
# PATH). HEARTH_SOCKET chooses the daemon, as for every hearth command.

# The widget: READLINE_LINE in, READLINE_LINE out. When hearth fails (no
# daemon, Ctrl-C) it says why on stderr and the line stays as it was.
__hearth_suggest() {
    local line=$READLINE_LINE out
    [[ -n ${line//[[:space:]]/} ]] || return 0
    out=$("${HEARTH_BIN:-hearth}" cmd --print -- "$line" </dev/null) || return 0
    [[ -n $out ]] || return 0
    READLINE_LINE=$out
    READLINE_POINT=${#READLINE_LINE}
}

# Only where there is line editing (sourcing it in a script does no harm).
if [[ $- == *i* ]]; then
    bind -m emacs -x "\"${HEARTH_KEY:-\\C-x\\C-a}\": __hearth_suggest"
    bind -m vi-insert -x "\"${HEARTH_KEY:-\\C-x\\C-a}\": __hearth_suggest"
fi
