# Sourced by run-guest.sh and run-net.sh: how one VMM run of the micro-guest is shown and
# judged. The caller sets tag (the message prefix), dir (its temporary folder), log (the
# guest's console file), out (the VMM's stdout and stderr), timeout_s and keep_log.

# show_cmd ARGS...: the command line, quoted where a word has a space
show_cmd() {
	printf '%s:' "$tag"
	for a in "$@"; do
		case $a in *" "*) printf " '%s'" "$a" ;; *) printf ' %s' "$a" ;; esac
	done
	echo
}

# judge_run RC WANT START END: prints the console and the VMM's output, then sets ok
# (0 on a timeout or an exit status other than WANT) and clean (the console without CRs,
# copied to keep_log when given).
judge_run() {
	echo "--- console ---"
	[ -f "$log" ] && tr -d '\r' <"$log"
	echo "--- vmm output ---"
	cat "$out"
	echo "---"
	echo "$tag: exit status $1 (want $2), $(awk "BEGIN { printf \"%.2f\", $4 - $3 }") s"
	ok=1
	if [ "$1" -eq 124 ] || [ "$1" -eq 137 ]; then
		echo "$tag: FAIL: timed out after ${timeout_s}s"
		ok=0
	elif [ "$1" -ne "$2" ]; then
		echo "$tag: FAIL: exit status $1, want $2"
		ok=0
	fi
	clean=$dir/console.txt
	tr -d '\r' <"$log" >"$clean" 2>/dev/null || : >"$clean"
	[ -z "$keep_log" ] || cp "$clean" "$keep_log"
}

# check TEXT: the console must have TEXT (else ok=0)
check() {
	if ! grep -qF -- "$1" "$clean"; then
		echo "$tag: FAIL: console lacks \"$1\""
		ok=0
	fi
}

# check_all LINES: check for each non-empty line
check_all() {
	while IFS= read -r e; do
		[ -n "$e" ] && check "$e"
	done <<EXPECTS
$1
EXPECTS
}
