# Helpers shared by tools/flood.sh and tools/soak.sh (sourced, not run).

# free_base: a port P with P..P+4 not in use, below the ephemeral range (clients' own ports
# cannot take it).
free_base() {
    local base=$((10000 + RANDOM % 9000))
    while ss -Htuln | awk '{ print $5 }' |
        grep -qE ":($base|$((base + 1))|$((base + 2))|$((base + 3))|$((base + 4)))\$"; do
        base=$((10000 + RANDOM % 9000))
    done
    echo "$base"
}

# wait_served URL PID LOG: waits up to 30 s for URL to answer 2xx; exits 2 when the server
# (PID, logging to LOG) is gone.
wait_served() {
    for _ in $(seq 1 300); do
        curl -sf -o /dev/null "$1" && break
        sleep 0.1
    done
    kill -0 "$2" 2>/dev/null || { echo "$0: the server did not start: $(tail -3 "$3")" >&2; exit 2; }
}
