#!/bin/bash
# Merge the configuration the way the official orthancteam/orthanc image does:
# /etc/orthanc/*.json (deep merge), then ORTHANC_JSON, then ORTHANC__A__B_C=value
# (-> {"A": {"BC": value}}, words capitalised), and start Orthanc on the result.
set -euo pipefail
out="${1:-/tmp/orthanc.json}"
shopt -s nullglob
files=(/etc/orthanc/*.json)
merged='{}'
for f in "${files[@]}"; do
  merged=$(jq -n --argjson a "$merged" --slurpfile b "$f" '$a * $b[0]')
done
if [ -n "${ORTHANC_JSON:-}" ]; then
  merged=$(jq -n --argjson a "$merged" --argjson b "$ORTHANC_JSON" '$a * $b')
fi
while IFS='=' read -r name value; do
  path=$(jq -n --arg n "${name#ORTHANC__}" \
    '$n | split("__") | map(ascii_downcase | split("_") | map((.[:1] | ascii_upcase) + .[1:]) | join(""))')
  merged=$(jq -n --argjson a "$merged" --argjson p "$path" --arg v "$value" \
    '$a | setpath($p; ($v | try fromjson catch $v))')
done < <(env | grep '^ORTHANC__' || true)
printf '%s\n' "$merged" > "$out"
exec /usr/sbin/Orthanc "$out"
