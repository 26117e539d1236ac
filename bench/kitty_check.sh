#!/usr/bin/env bash
# The app's Kitty graphics in a real kitty under Xvfb, driven as a person would (issue 27, item 10).
#
#   bench/kitty_check.sh [OUT_DIR]        # default /tmp/kitty-check; screenshots and report.txt go there
#
# KITTY: the kitty to run (default: kitty on PATH). KITTY_RC: the kitty whose `kitty @` drives it (default KITTY;
# a kitty built with --skip-building-kitten has no `kitty @`: Debian's /usr/bin/kitty can drive it).
# MODE: the graphics setting (default kitty; auto lets the terminal answer). PYTHON: the interpreter that runs
# the app (default .venv/bin/python; sd_explorer must import, and CLIP's vocabulary be found: SD_EXPLORER_CLIP_BPE).
#
# Keys go in through kitty's remote control (send-text), every step waits for a state on kitty's own screen
# text (get-text), never a fixed time, and each step reports the Unicode placeholder cells (U+10EEEE) that
# the Kitty pictures are drawn with: how many pictures, their size in cells, and any escape-sequence text
# left on screen. The screenshots (ImageMagick's import of the X screen) show what the cells cannot.
# Steps: the sweep (4 cells), the latents pane (no picture may stay), the sweep again, the command palette
# over it, a smaller window, a larger font, f8 through cells/auto/sixel/kitty, a one-cell sweep at font
# size 3 (534 columns: a 297-cell limit), and quitting (nothing may stay).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/kitty-check}
KITTY=${KITTY:-kitty}
KITTY_RC=${KITTY_RC:-$KITTY}
MODE=${MODE:-kitty}
PYTHON=${PYTHON:-.venv/bin/python}
for tool in Xvfb import "$KITTY" "$KITTY_RC"; do
  command -v "$tool" >/dev/null || { echo "kitty_check: $tool is missing (apt-get install kitty xvfb imagemagick)"; exit 2; }
done
mkdir -p "$OUT"
rm -f "$OUT"/*.png "$OUT/report.txt" "$OUT/kitty.sock"
SOCK="unix:$OUT/kitty.sock"
printf 'graphics = "%s"\n' "$MODE" > "$OUT/config.toml"

exec 3< <(Xvfb -displayfd 1 -screen 0 1600x1000x24 -nolisten tcp 2>/dev/null & echo "pid $!")
read -r _ XVFB_PID <&3
read -r DISPLAY_NUMBER <&3  # Xvfb writes its display number once it accepts clients
export DISPLAY=":$DISPLAY_NUMBER" LIBGL_ALWAYS_SOFTWARE=1
KITTY_PID=
cleanup() {
  [ -n "$KITTY_PID" ] && kill "$KITTY_PID" 2>/dev/null || true
  kill "$XVFB_PID" 2>/dev/null || true
}
trap cleanup EXIT

"$KITTY" --config NONE -o font_size=11 -o remember_window_size=no -o initial_window_width=1400 \
  -o initial_window_height=900 -o confirm_os_window_close=0 -o allow_remote_control=yes --listen-on "$SOCK" \
  sh -c "'$PYTHON' -m sd_explorer.tui --config '$OUT/config.toml'; echo app-exited-\$?; sleep 600" \
  > "$OUT/kitty.log" 2>&1 &
KITTY_PID=$!

rc() { "$KITTY_RC" @ --to "$SOCK" "$@"; }
screen_text() { rc get-text 2>/dev/null || true; }
keys() { rc send-text -- "$1"; }
shot() { import -window root "$OUT/$1.png"; }
# wait_for WHAT PYTHON-CONDITION (t: the screen text; p: its placeholder cells; cols: its width, the title row's)
wait_for() {
  local what=$1 condition=$2 deadline=$((SECONDS + ${3:-180}))
  until screen_text | "$PYTHON" -c "import sys; t = sys.stdin.read(); p = t.count(chr(0x10EEEE)); \
cols = len((t.splitlines() or [''])[0]); sys.exit(0 if ($condition) else 1)"; do
    [ $SECONDS -lt $deadline ] || { echo "kitty_check: timed out waiting for $what"; screen_text | tail -5; exit 1; }
    sleep 0.2
  done
}
# report NAME PICTURES: the placeholder cells, grouped in pictures (runs of them on the first row that has some);
# PICTURES "-": not counted (forced Sixel in kitty: the Sixel widget leaves its last row to the terminal, so
# the Kitty pictures' last placeholder row stays as text; their pictures are freed, so kitty draws nothing there)
REPORT=$(cat <<'EOF'
import re, sys
name, wanted = sys.argv[1], sys.argv[2]
lines = sys.stdin.read().splitlines() or [""]
mark = chr(0x10EEEE)
rows = [i for i, line in enumerate(lines) if mark in line]
runs = re.findall(f"{mark}[^ {mark}]*(?:{mark}[^ {mark}]*)*", lines[rows[0]]) if rows else []
leftovers = [line.strip()[:60] for line in lines if re.search(r"\x1b|_G[a-zA-Z]=|[aUqmi]=[0-9a-z]+,|\[[0-9;]{4,}m", line)]
size = "no picture"
if rows:
    size = f"{len(runs)} picture(s) of {runs[0].count(mark)}x{len(rows)} cells at rows {rows[0]}-{rows[-1]}"
ok = wanted == "-" or len(runs) == int(wanted)
ok = ok and not leftovers
print(f"{'ok  ' if ok else 'FAIL'} {name}: {size} ({len(lines)} rows x {len(lines[0])} columns); "
      f"escape text on screen: {leftovers or 'none'}")
EOF
)
report() { screen_text | "$PYTHON" -c "$REPORT" "$1" "$2" | tee -a "$OUT/report.txt"; }

VERSION=$("$KITTY" --version | awk '{print $2}')
# the app's Kitty pictures are placeholder cells; auto draws half blocks instead in a kitty older than 0.28
WANT=4
if [ "$MODE" = auto ] && "$PYTHON" -c "import sys; sys.exit(tuple(map(int, '$VERSION'.split('.'))) >= (0, 28))"; then WANT=0; fi
echo "kitty $VERSION, graphics = $MODE" | tee "$OUT/report.txt"
wait_for "the app" "'prompt:' in t and 'tokens' in t"
keys $'\eOR'                                        # f3: the sweep
wait_for "the sweep pane" "'Run sweep' in t"
keys $'\x12'                                        # ctrl+r
wait_for "the sweep's images" "'done: seed' in t and (p > 0) == ($WANT > 0)"
shot 1-sweep; report "sweep, 4 cells" $WANT
keys $'\eOS'                                        # f4: the latents pane, no image yet
wait_for "the latents pane" "'Encode an image' in t and p == 0"
shot 2-latents; report "latents pane (the sweep's pictures gone)" 0
keys $'\eOR'
wait_for "the sweep again" "'done: seed' in t and (p > 0) == ($WANT > 0)"
report "sweep again" $WANT
keys $'\x10'                                        # ctrl+p: the palette over the images
wait_for "the palette" "'Search for commands' in t"
shot 3-palette
keys $'\e'
wait_for "the palette to close" "'Search for commands' not in t"
cols=$(screen_text | head -1 | "$PYTHON" -c "import sys; print(len(sys.stdin.read().rstrip('\\n')))")
rc resize-os-window --width 900 --height 600 --unit pixels
wait_for "the smaller window" "cols < $cols - 10 and 'done: seed' in t"
shot 4-small; report "window 900x600 px" $WANT
cols=$(screen_text | head -1 | "$PYTHON" -c "import sys; print(len(sys.stdin.read().rstrip('\\n')))")
rc set-font-size 15
wait_for "the larger font" "cols < $cols - 5 and 'done: seed' in t"
shot 5-font15; report "font size 15" $WANT
rc set-font-size 11
rc resize-os-window --width 1400 --height 900 --unit pixels
wait_for "the window back" "cols > 140 and 'done: seed' in t"
ORDER=(cells auto sixel kitty)
for i in 0 1 2 3; do [ "${ORDER[$i]}" = "$MODE" ] && start=$i; done
for step in 1 2 3 4; do
  mode=${ORDER[$(((start + step) % 4))]}
  keys $'\e[19~'                                    # f8: the next graphics mode
  wait_for "graphics = $mode" "'graphics = $mode' in t"
  want=0
  if [ "$mode" = kitty ] || screen_text | grep -q "graphics = auto: Kitty"; then want=4; fi
  if [ "$mode" = sixel ]; then
    wait_for "the Kitty pictures to go" "p <= cols"  # at most their last row's placeholder text stays
    shot "6-f8-$step-$mode"; report "f8 -> $mode (kitty has no Sixel)" -
  else
    wait_for "the images in $mode" "(p > 0) == ($want > 0)"; shot "6-f8-$step-$mode"; report "f8 -> $mode" $want
  fi
done
rc resize-os-window --width 1600 --height 1000 --unit pixels
rc set-font-size 3
wait_for "font size 3" "cols > 400"
keys $'\x05\x15'; keys "1"; keys $'\x12'            # the scales field: one cell, then ctrl+r
wait_for "the one-cell sweep to start" "'step ' in t or 'app-exited' in t"
wait_for "the one-cell sweep" "('done: seed' in t and (p > 0) == ($WANT > 0)) or 'app-exited' in t"
shot 7-one-cell-font3; report "one cell at font size 3" $((WANT > 0 ? 1 : 0))
rc set-font-size 11
wait_for "font size 11" "cols < 200"
keys $'\x11'                                        # ctrl+q
wait_for "the app to quit" "'app-exited' in t"
shot 8-quit; report "after quitting" 0
if grep -q FAIL "$OUT/report.txt"; then echo "kitty_check: FAIL (see $OUT)"; exit 1; fi
echo "kitty_check: all steps ok; screenshots in $OUT"
