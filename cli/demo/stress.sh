#!/bin/bash
# CPU stress task of the reference scenarios. Input: "<cores>-<seconds>" (seconds may be fractional).
# Burns <cores> busy loops for <seconds>, then writes a line to the output folder.
set -u
spec="$(cat "$1")"
cores="${spec%-*}"
secs="${spec#*-}"
for _ in $(seq "$cores"); do
  timeout "$secs" bash -c 'while :; do :; done' &
done
wait
echo "burned ${cores} cores for ${secs} s" > "$2/result.txt"
echo "done: ${spec}"
