#!/bin/sh
# SPDX-License-Identifier: MIT
# How cost grows (issue 11 §5): three plots for docs/performance.md, each
# from `pgroup bench --json` runs on one fresh daemon (started at Debian's
# default soft fd limit, as bench_groups.sh does).
#
#   scripts/plots.sh [BUILD_DIR] [OUT_DIR] [RUNS]
#
#   OUT_DIR/members.png  deliveries/s against N = 1..16 members (back to back)
#   OUT_DIR/sizes.png    p50 and p99 against the message size, 64 B .. 1 MiB,
#                        pg_send (a copy in, a copy out) and --zero-copy
#                        (claim, fill in place, commit; read in place), 1,000 msg/s
#   OUT_DIR/groups.png   p50 and p99 against the groups a consumer joined,
#                        1 .. 10,000 (100 msg/s to random groups), pg_recv and pg_fd
#
# Each point is the median of RUNS runs (default 3); OUT_DIR/*.dat hold
# the points. PLOTS (default "members sizes groups") says which to measure
# again; every plot is drawn from the .dat files there. BUILD_DIR (default build) should be built without test hooks
# (meson setup B -Dtests=disabled). Needs gnuplot (scripts/deps.sh).
set -eu
cd "$(dirname "$0")/.."
B=${1:-build}
OUT=${2:-docs/plots}
RUNS=${3:-3}
MEMBERS=${MEMBERS:-1 2 3 4 6 8 12 16}
SIZES=${SIZES:-64 256 1024 4096 16384 65536 262144 1048576}
GROUPS=${GROUPS_LIST:-1 10 100 1000 10000}
command -v gnuplot >/dev/null || { echo "plots.sh: needs gnuplot (scripts/deps.sh)" >&2; exit 2; }
mkdir -p "$OUT"
dir=$(mktemp -d)
(ulimit -Sn 1024 2>/dev/null; exec "$B/tools/pgroupd" --socket "$dir/sock" 2>"$dir/log") &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT INT TERM
for _ in $(seq 50); do [ -S "$dir/sock" ] && break; sleep 0.1; done

# The median of RUNS runs of one bench, as "field field ..." (JSON paths).
point() {
	fields=$1
	shift
	for _ in $(seq "$RUNS"); do
		"$B/tools/pgroup" bench --socket "$dir/sock" --json "$@" || true
	done | python3 -c '
import json, statistics, sys
paths = sys.argv[1].split()
rows = [json.loads(l) for l in sys.stdin if l.startswith("{")]
rows = [r for r in rows if r.get("ok")]
def get(r, p):
    for k in p.split("."):
        r = r[k]
    return r
print(" ".join("%.3f" % statistics.median(get(r, p) for r in rows) if rows else "nan"
               for p in paths))' "$fields"
}

wanted() { case " ${PLOTS:-members sizes groups} " in *" $1 "*) return 0 ;; esac; return 1; }

if wanted members; then
# delivery_rate: deliveries (messages x members) per second of the run.
echo "# members deliveries_per_s" >"$OUT/members.dat"
for n in $MEMBERS; do
	echo "$n $(point delivery_rate --members "$n" --count 1000000)" >>"$OUT/members.dat"
done
fi

if wanted sizes; then
echo "# size copy_p50 copy_p99 zc_p50 zc_p99 (us)" >"$OUT/sizes.dat"
for z in $SIZES; do
	ring=$((z * 4 > 1048576 ? z * 4 : 1048576))
	copy=$(point "latency_us.p50 latency_us.p99" --members 1 --size "$z" --ring "$ring" \
		--rate 1000 --count 2000)
	zc=$(point "latency_us.p50 latency_us.p99" --members 1 --size "$z" --ring "$ring" \
		--rate 1000 --count 2000 --zero-copy)
	echo "$z $copy $zc" >>"$OUT/sizes.dat"
done
fi

if wanted groups; then
echo "# groups recv_p50 recv_p99 fd_p50 fd_p99 (us)" >"$OUT/groups.dat"
for g in $GROUPS; do
	r=$(point "latency_us.p50 latency_us.p99" --members 1 --groups "$g" --rate 100 --count 500)
	f=$(point "latency_us.p50 latency_us.p99" --members 1 --groups "$g" --rate 100 --count 500 \
		--wait fd)
	echo "$g $r $f" >>"$OUT/groups.dat"
done
fi

gnuplot <<EOF
set terminal pngcairo size 900,500 noenhanced
set grid
set key top left
set output '$OUT/members.png'
set title 'pgroup: deliveries/s against members (1 sender, 64 B, back to back)'
set xlabel 'members N'
set ylabel 'deliveries/s (messages x members)'
plot '$OUT/members.dat' using 1:2 with linespoints lw 2 title 'deliveries/s'
set output '$OUT/sizes.png'
set title 'pgroup: latency against message size (1 member, 1,000 msg/s)'
set xlabel 'message size (bytes)'
set ylabel 'latency (us)'
set logscale x 2
set format x '%.0b %BB'
set logscale y
plot '$OUT/sizes.dat' using 1:2 with linespoints lw 2 title 'pg_send p50', \
     '' using 1:3 with linespoints dt 2 title 'pg_send p99', \
     '' using 1:4 with linespoints lw 2 title 'zero-copy p50', \
     '' using 1:5 with linespoints dt 2 title 'zero-copy p99'
set output '$OUT/groups.png'
set title 'pgroup: latency against groups joined (1 consumer, 100 msg/s to random groups)'
set xlabel 'groups the consumer joined'
set logscale x 10
set format x '%.0f'
plot '$OUT/groups.dat' using 1:2 with linespoints lw 2 title 'pg_recv p50', \
     '' using 1:3 with linespoints dt 2 title 'pg_recv p99', \
     '' using 1:4 with linespoints lw 2 title 'pg_fd + epoll p50', \
     '' using 1:5 with linespoints dt 2 title 'pg_fd + epoll p99'
EOF
echo "plots in $OUT: members.png sizes.png groups.png"
