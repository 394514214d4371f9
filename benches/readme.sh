#!/usr/bin/env bash
# Puts benches/table.sh's output (on stdin) into FILE (README.md) between
# the markers `<!-- benches/table.sh -->` and `<!-- end benches/table.sh -->`,
# replacing what was there.
#
#   benches/table.sh | benches/readme.sh README.md
set -euo pipefail
file=${1:?usage: benches/readme.sh README.md}
table=$(mktemp)
trap 'rm -f "$table"' EXIT
cat > "$table"
[ -s "$table" ] || { echo "readme.sh: nothing on stdin" >&2; exit 1; }
grep -q '^<!-- benches/table.sh -->$' "$file" && grep -q '^<!-- end benches/table.sh -->$' "$file" ||
    { echo "readme.sh: $file has no benches/table.sh markers" >&2; exit 1; }
awk -v table="$table" '
    /^<!-- benches\/table.sh -->$/ { print; while ((getline line < table) > 0) print line; skip = 1; next }
    /^<!-- end benches\/table.sh -->$/ { skip = 0 }
    !skip' "$file" > "$file.new"
mv "$file.new" "$file"
