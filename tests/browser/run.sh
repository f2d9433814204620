#!/usr/bin/env bash
# tests/browser/run.sh KEEL_GATE BUILD_DIR: keel-gate serve's dashboard in a real headless
# Chromium (ctest browser.dashboard; docs/gate-api.md "Dashboard").
#
# Makes a real repository with a gate (.keel/gate.conf, one configuration whose job takes about
# a second), adds two tokens, starts `keel-gate serve` on a free port of 127.0.0.1 and runs
# dashboard.test.js (node, playwright-core pinned in package.json, on Debian's chromium) against
# it: the page loads with no console error, shows the queue, follows a landing live (no
# reload), refuses a submit without a token and shows the error, takes one with a token, shows
# the paused banner, and leaves a screenshot in BUILD_DIR/dashboard.png.  A second gate guarding
# two targets (main, comp/net; a change queued on comp/net only) is served too: the target picker
# is shown there (hidden on the first, one target), and choosing comp/net shows its queue with
# ?target= on the page and on the API's requests.
#
# It installs what it needs: Debian's chromium and nodejs/npm (apt-get, only when root and
# missing) and playwright-core (npm ci into BUILD_DIR/browser-test/).  Where it cannot, it exits
# 77 (ctest: skipped) saying why: on a plain Debian 12, whose nodejs is 18, it says that
# playwright-core needs node 20 or later and that KEEL_NODE may name one (its npm beside it).
set -u -o pipefail
gate_bin=$1
build=$(cd "$2" && pwd)
here=$(cd "$(dirname "$0")" && pwd)

skip() {
    echo "skipped: $*"
    exit 77
}

apt_install() { # apt_install PACKAGE...: as root, when apt-get is there
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
    echo "browser test: installing $* (apt-get)"
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"; } >"$build/browser-apt.log" 2>&1
}

chromium=${KEEL_CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
    apt_install chromium || skip "no Chromium at $chromium, and it cannot be installed here (apt-get as root: see $build/browser-apt.log)"
fi
[ -x "$chromium" ] || skip "no Chromium at $chromium"
# KEEL_NODE: a node (with its npm beside it) other than the one on PATH
if [ -n "${KEEL_NODE:-}" ]; then
    [ -x "$KEEL_NODE" ] || skip "KEEL_NODE=$KEEL_NODE is not an executable"
    PATH=$(dirname "$KEEL_NODE"):$PATH
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt_install nodejs npm || skip "no node/npm, and they cannot be installed here (apt-get as root)"
fi
# the node that playwright-core needs, as package-lock.json pins it (its "engines": ">=20")
engines=$(sed -n '/"node_modules\/playwright-core"/,/^    }/s/.*"node": "\(.*\)".*/\1/p' "$here/package-lock.json")
need=${engines#>=}
case $need in '' | *[!0-9]*) skip "package-lock.json's playwright-core names no node version as '>=N' (engines: '$engines')" ;; esac
major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
[ "$major" -ge "$need" ] ||
    skip "node $(node --version 2>/dev/null) ($(command -v node)) is older than the $need that playwright-core $(sed -n 's/.*"playwright-core": "\(.*\)".*/\1/p' "$here/package.json") needs (engines: node $engines; Debian 12's nodejs is 18): set KEEL_NODE to a node $need or later (Debian 13's nodejs, or NodeSource's)"

# playwright-core, as package-lock.json pins it, into the build tree (never into the sources)
mods=$build/browser-test
want=$(sed -n 's/.*"playwright-core": "\(.*\)".*/\1/p' "$here/package.json")
have=$(node -p "require('$mods/node_modules/playwright-core/package.json').version" 2>/dev/null || true)
if [ "$have" != "$want" ]; then
    mkdir -p "$mods"
    cp "$here/package.json" "$here/package-lock.json" "$mods/"
    (cd "$mods" && npm ci --no-audit --no-fund --loglevel=error) >"$build/browser-npm.log" 2>&1 ||
        skip "npm ci of playwright-core $want failed (no registry here?): see $build/browser-npm.log"
fi

# ---- a gate on a real repository ---------------------------------------------------------
tmp=$(mktemp -d /tmp/keel-browser-XXXXXX)
served_pids= # every `keel-gate serve` started (serve below)
cleanup() {
    for pid in $served_pids; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    rm -rf -- "$tmp"
}
trap cleanup EXIT
repo=$tmp/repo.git
work=$tmp/work
mkdir -p "$tmp/shared"
git init -q -b main "$work"
g() { git -C "$work" -c user.name=test -c user.email=test@localhost "$@"; }
mkdir -p "$work/.keel"
cat >"$work/.keel/gate.conf" <<EOF
[gate]
target = main
slots = 2
strategy = serial

[config unit]
test = sh ci.sh unit
timeout = 60
writable = $tmp/shared

[config lint]
test = sh ci.sh lint
timeout = 60
writable = $tmp/shared

[config smoke]
test = test ! -e broken
levels = post
tier = 1

[flow main -> release/2.1]
owner = Ann Lee <ann@example.org>
EOF
# shellcheck disable=SC2016 # ($1: the job's, in the script written)
printf 'echo "ci: $1"\nsleep 2\ntest ! -e bad\n' >"$work/ci.sh"
echo base >"$work/README"
g add -A && g commit -qm base
for b in alpha beta gamma; do
    g checkout -q -b "$b" main && echo "$b" >"$work/$b.txt" && g add -A && g commit -qm "$b" && g checkout -q main
done
# breaker: passes the queue's unit and lint, breaks smoke at level post (a culprit to find and back out)
g checkout -q -b breaker main && echo yes >"$work/broken" && g add -A && g commit -qm "add a broken marker" &&
    g checkout -q main
g branch release/2.1 main
git clone -q --bare "$work" "$repo"
kg() { "$gate_bin" --repo "$repo" --quiet "$@"; }
admin=$("$gate_bin" --repo "$repo" token add ops --role admin) || { echo "FAIL: token add"; exit 1; }
reader=$("$gate_bin" --repo "$repo" token add viewer --role read) || { echo "FAIL: token add"; exit 1; }

# serve REPO NAME: `keel-gate serve` of REPO on a free port: $served_url (its pid in $served_pids)
serve() {
    "$gate_bin" --repo "$1" serve --listen 127.0.0.1:0 >"$tmp/$2.out" 2>"$tmp/$2.err" &
    served_pid=$!
    served_pids="$served_pids $served_pid"
    for _ in $(seq 100); do
        [ -s "$tmp/$2.out" ] && break
        sleep 0.1
    done
    served_url=$(head -n1 "$tmp/$2.out")
    case $served_url in
    http://127.0.0.1:*) ;;
    *) echo "FAIL: keel-gate serve ($2) printed no address: $(cat "$tmp/$2.err")"; exit 1 ;;
    esac
}
serve "$repo" serve
url=$served_url

# ---- a second gate guarding two targets: main and comp/net (the dashboard's target picker) --
work2=$tmp/work2
repo2=$tmp/repo2.git
git init -q -b main "$work2"
g2() { git -C "$work2" -c user.name=test -c user.email=test@localhost "$@"; }
mkdir -p "$work2/.keel"
printf '[gate]\ntargets = main comp/net\nslots = 1\n\n[config unit]\ntest = true\n' >"$work2/.keel/gate.conf"
g2 add -A && g2 commit -qm base
g2 branch comp/net main
g2 checkout -q -b net-topic comp/net && echo net >"$work2/net.txt" && g2 add -A && g2 commit -qm "net topic" &&
    g2 checkout -q main
git clone -q --bare "$work2" "$repo2"
"$gate_bin" --repo "$repo2" --target comp/net --quiet submit net-topic >/dev/null ||
    { echo "FAIL: submit net-topic to comp/net"; exit 1; }
serve "$repo2" serve2
url2=$served_url

NODE_PATH=$mods/node_modules KEEL_URL=$url KEEL_URL2=$url2 KEEL_GATE=$gate_bin KEEL_REPO=$repo KEEL_WORK=$work \
    KEEL_ADMIN_TOKEN=$admin KEEL_READ_TOKEN=$reader KEEL_CHROMIUM=$chromium \
    KEEL_SCREENSHOT=$build/dashboard.png node "$here/dashboard.test.js"
