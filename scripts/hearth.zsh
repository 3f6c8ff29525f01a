# hearth.zsh — zsh key binding for hearth's shell helper (docs/shell.md).
#
# Source it from ~/.zshrc:
#     source /usr/share/hearth/hearth.zsh       # installed
#     source ~/src/hearth/scripts/hearth.zsh    # from a checkout
# Then write what you want to do on the prompt line, in words, and press
# Ctrl-X Ctrl-A: the line is sent to `hearth cmd --print` and replaced by the
# proposed command, to edit and run with Enter as usual (or not). Nothing
# runs on its own. The risk rating of a command that is not safe is printed
# above the prompt.
#
# Settings (before sourcing): HEARTH_KEY, the key in bindkey's syntax
# (default '^X^A'); HEARTH_BIN, the hearth command (default: hearth on
# PATH). HEARTH_SOCKET chooses the daemon, as for every hearth command.

# The ZLE widget: BUFFER in, BUFFER out. When hearth fails (no daemon,
# Ctrl-C) it says why on stderr and the line stays as it was.
__hearth_suggest() {
    emulate -L zsh
    [[ -n ${BUFFER//[[:space:]]/} ]] || return 0
    local out
    zle -I  # hearth's messages go above the prompt, which is redrawn after
    out=$("${HEARTH_BIN:-hearth}" cmd --print -- "$BUFFER" </dev/null) || return 0
    [[ -n $out ]] || return 0
    BUFFER=$out
    CURSOR=${#BUFFER}
}

# Only where there is line editing (sourcing it in a script does no harm).
if [[ -o interactive ]]; then
    zle -N __hearth_suggest
    bindkey -M emacs "${HEARTH_KEY:-^X^A}" __hearth_suggest
    bindkey -M viins "${HEARTH_KEY:-^X^A}" __hearth_suggest
fi
