#!/usr/bin/env bash
# shellcheck disable=SC2015,SC2016,SC2317  # A && B || die; single-quoted device scripts; trap functions
# Runs the harness as a Raspberry Pi 400 user would, on an x86-64 Debian host, under emulation:
#
#   sudo scripts/emulate-rpi.sh            # options: scripts/emulate-rpi.sh --help
#
# Raspberry Pi OS 64-bit is Debian bookworm for arm64 with Python 3.11, so the script builds a
# Debian bookworm arm64 root filesystem once (mmdebstrap, cached outside the checkout), runs its
# aarch64 programs through qemu-user (binfmt_misc), and inside it, as user `pi`:
#   1. on the host (the "workstation"): bootstraps the host venv and exports the models to ONNX
#      (`python -m harness export`), then copies the export folder to /home/pi/onnx;
#   2. on the "device": copies the working tree to /home/pi/harness, runs ./scripts/bootstrap.sh
#      (the rpi machine class: no torch), `python -m harness doctor --device rpi`,
#      ./run_all.sh --device rpi --onnx-dir /home/pi/onnx, and a fast subset of the tests;
#   3. checks what a Pi run must show (onnxruntime present, no torch, the rpi profile with 4
#      threads, the results store, plots and report written, the run recorded as emulated, no
#      doctor failure other than those emulation cannot avoid),
#      copies results and plots back to results/emulated-rpi/, and exits non-zero on any failure.
#
# The emulated CPU is a Cortex-A72 (QEMU_CPU=cortex-a72): qemu's default "max" CPU advertises
# SVE, dot-product and other extensions a Pi 400 lacks, which numpy and ONNX Runtime would use.
# The device sees a small fake /sys (4 CPUs, Cortex-A72 MIDR) and a matching /proc/cpuinfo: with
# the host's /sys, aarch64 ONNX Runtime segfaults at import under qemu ("Can't open MIDR_EL1").
#
# Idempotent: a rerun reuses the root filesystem (a stamp marks a complete build; an incomplete
# one is rebuilt) and the device venv (/home/pi/harness/.venv is kept across copies of the tree).
# Every mount is undone on exit, including on error and Ctrl-C.
#
# Environment: HARNESS_RPI_ROOT (root filesystem, default /var/cache/harness/rpi-bookworm-arm64),
# HARNESS_RPI_MIRROR (Debian mirror for the build, default mmdebstrap's), HARNESS_VENV (host venv,
# default ./.venv, as for run_all.sh). http(s)_proxy, no_proxy and PIP_INDEX_URL /
# PIP_EXTRA_INDEX_URL / PIP_TRUSTED_HOST / PIP_DEFAULT_TIMEOUT are passed to the device.
set -euo pipefail

# --------------------------------------------------------------------------- settings
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOTFS="${HARNESS_RPI_ROOT:-/var/cache/harness/rpi-bookworm-arm64}"
MIRROR="${HARNESS_RPI_MIRROR:-}"
SUITE=bookworm                                          # Raspberry Pi OS 12 = Debian 12
ARCH=arm64
PACKAGES=python3,python3-venv,python3-pip,ca-certificates,git
QEMU_CPU_MODEL=cortex-a72                               # the Pi 400's BCM2711 cores
MIDR=0x00000000410fd083                                 # MIDR_EL1 of a Cortex-A72 r0p3
NCPU=4
PI_UID=1000                                             # user `pi`, as on Raspberry Pi OS
DEV_HOME=/home/pi
DEV_TREE=$DEV_HOME/harness                              # the project on the device
DEV_ONNX=$DEV_HOME/onnx                                 # the export folder on the device

MODELS='eSR-MAX_s{scale}_K3_C1,eSR-TM_s{scale}_K7_C3'
SCALE=2
TESTS='-m "not torch" tests/test_imresize.py tests/test_metrics.py tests/power/test_power.py'
RUN_TESTS=1
OUT="$ROOT/results/emulated-rpi"
REBUILD=0
SHELL_ONLY=0
KEEP_MOUNTS=0
UNMOUNT_ONLY=0

say() { echo "[emulate-rpi] $*" >&2; }
die() { echo "[emulate-rpi] error: $*" >&2; exit 1; }

usage() {
  cat <<EOF
Usage: sudo scripts/emulate-rpi.sh [options]

Runs the harness in an emulated Raspberry Pi OS 64-bit (Debian bookworm arm64, qemu-user,
Cortex-A72) exactly as a Pi 400 user would, and checks the outcome.

Options:
  --models IDS      model ids for export and run (default: $MODELS)
  --scale N         scale(s) (default: $SCALE)
  --tests "ARGS"    pytest arguments for the device's test run
                    (default: $TESTS)
  --no-tests        skip the device's test run
  --out DIR         where results and plots are copied back (default: results/emulated-rpi)
  --root DIR        the arm64 root filesystem (default: \$HARNESS_RPI_ROOT or
                    /var/cache/harness/rpi-bookworm-arm64)
  --rebuild         build a fresh root filesystem (also drops the device venv)
  --shell           prepare the root filesystem and open a shell in it as user pi, then clean up
  --keep-mounts     leave /proc, /dev and the fake /sys mounted on exit (for chroot by hand)
  --unmount         only undo mounts left by --keep-mounts or a killed run
  -h, --help        this text

Needs: root, a Debian (or Debian-based) x86-64 or arm64 host, Debian's package mirror and PyPI.
Missing host packages (mmdebstrap, qemu-user-static, binfmt-support, git, ca-certificates) are
installed with apt-get.
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --models) [ $# -ge 2 ] || die "--models needs a value"; MODELS="$2"; shift 2 ;;
    --models=*) MODELS="${1#*=}"; shift ;;
    --scale) [ $# -ge 2 ] || die "--scale needs a value"; SCALE="$2"; shift 2 ;;
    --scale=*) SCALE="${1#*=}"; shift ;;
    --tests) [ $# -ge 2 ] || die "--tests needs a value"; TESTS="$2"; RUN_TESTS=1; shift 2 ;;
    --tests=*) TESTS="${1#*=}"; RUN_TESTS=1; shift ;;
    --no-tests) RUN_TESTS=0; shift ;;
    --out) [ $# -ge 2 ] || die "--out needs a value"; OUT="$2"; shift 2 ;;
    --out=*) OUT="${1#*=}"; shift ;;
    --root) [ $# -ge 2 ] || die "--root needs a value"; ROOTFS="$2"; shift 2 ;;
    --root=*) ROOTFS="${1#*=}"; shift ;;
    --rebuild) REBUILD=1; shift ;;
    --shell) SHELL_ONLY=1; shift ;;
    --keep-mounts) KEEP_MOUNTS=1; shift ;;
    --unmount) UNMOUNT_ONLY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done

# --------------------------------------------------------------------------- host checks

[ "$(id -u)" = 0 ] || die "needs root (chroot, mounts, binfmt): run 'sudo $0${*:+ $*}'"
[ -f /etc/debian_version ] && command -v apt-get >/dev/null 2>&1 \
  || die "needs a Debian or Debian-based host with apt-get (this one has no /etc/debian_version)"
case "$ROOTFS" in
  /*) ;;
  *) die "the root filesystem path must be absolute: '$ROOTFS' (set HARNESS_RPI_ROOT or --root)" ;;
esac
ROOTFS="${ROOTFS%/}"
case "$ROOTFS" in
  ""|/|/bin|/boot|/dev|/etc|/home|/lib|/proc|/root|/sys|/tmp|/usr|/var|/var/cache|*[[:space:]]*)
    die "refusing to use '$ROOTFS' as the root filesystem (pick a dedicated folder without spaces)" ;;
esac
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac

HOST_ARCH="$(uname -m)"
case "$HOST_ARCH" in
  x86_64|amd64) EMULATED=qemu-user ;;
  aarch64|arm64) EMULATED=chroot ;;   # already arm64: no qemu, just the Pi OS user space
  *) die "host architecture $HOST_ARCH is not supported (x86-64 or arm64)" ;;
esac

# The checkout's owner runs the host-side steps, so `sudo` does not leave root-owned files in it.
OWNER="$(stat -c %U "$ROOT")"
host_run() {
  if [ "$OWNER" = root ] || [ "$OWNER" = UNKNOWN ]; then "$@"; else runuser -u "$OWNER" -- "$@"; fi
}

# --------------------------------------------------------------------------- mounts

# Mount points at or below DIR (default: the root filesystem), deepest first.
mounts_below() {
  awk -v r="${1:-$ROOTFS}" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

unmount_all() {
  local dir="${1:-$ROOTFS}" m tries=0
  while [ -n "$(mounts_below "$dir")" ] && [ $tries -lt 5 ]; do
    while read -r m; do
      [ -n "$m" ] || continue
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done < <(mounts_below "$dir")
    tries=$((tries + 1))
  done
  [ -z "$(mounts_below "$dir")" ] || { say "warning: still mounted under $dir:"; mounts_below "$dir" >&2; return 1; }
}

WORK=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$KEEP_MOUNTS" = 1 ] && [ -n "$(mounts_below 2>/dev/null)" ]; then
    say "mounts kept; enter with: sudo env QEMU_CPU=$QEMU_CPU_MODEL chroot --userspec=$PI_UID:$PI_UID $ROOTFS /bin/bash -l"
    say "undo them with: sudo $0 --unmount${ROOTFS:+ --root $ROOTFS}"
  else
    unmount_all || rc=1
  fi
  [ -z "$WORK" ] || rm -rf "$WORK"
  exit "$rc"
}

if [ "$UNMOUNT_ONLY" = 1 ]; then
  unmount_all && say "nothing mounted under $ROOTFS"
  exit $?
fi

# One run at a time per root filesystem (two would unmount each other's /proc).
mkdir -p "$(dirname "$ROOTFS")"
exec 9>"$ROOTFS.lock"
flock -n 9 || die "another emulate-rpi.sh is using $ROOTFS (lock $ROOTFS.lock)"

trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM
WORK="$(mktemp -d /tmp/emulate-rpi.XXXXXX)"
T_START=$SECONDS
declare -A TIMES=()

# --------------------------------------------------------------------------- 1. prerequisites

APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" = 0 ]; then
    say "apt-get update"
    apt-get update -qq || die "apt-get update failed: check the host's Debian mirror in /etc/apt/sources.list*"
    APT_UPDATED=1
  fi
  say "installing host packages: $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >"$WORK/apt.log" 2>&1 \
    || { tail -n 20 "$WORK/apt.log" >&2; die "apt-get install $* failed (log above)"; }
}

check_prerequisites() {
  local missing=()
  command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
  command -v git >/dev/null 2>&1 || missing+=(git)
  command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
  [ -s /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
  if [ "$EMULATED" = qemu-user ]; then
    [ -x /usr/bin/qemu-aarch64-static ] || missing+=(qemu-user-static)
    command -v update-binfmts >/dev/null 2>&1 || missing+=(binfmt-support)
  fi
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
}

# qemu-aarch64 must be registered with the F flag: the kernel then opens the interpreter once, at
# registration, so it also runs binaries inside a chroot that has no qemu of its own.
check_binfmt() {
  [ "$EMULATED" = qemu-user ] || return 0
  local bm=/proc/sys/fs/binfmt_misc entry=/proc/sys/fs/binfmt_misc/qemu-aarch64
  if ! mountpoint -q "$bm"; then
    mount -t binfmt_misc binfmt_misc "$bm" 2>/dev/null \
      || die "cannot mount binfmt_misc (in a container? run on the host or in a privileged container; 'modprobe binfmt_misc')"
  fi
  [ "$(cat "$bm/status")" = enabled ] || echo 1 > "$bm/status"
  if ! grep -q '^flags:.*F' "$entry" 2>/dev/null || ! grep -q '^enabled' "$entry" 2>/dev/null; then
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
  fi
  if ! grep -q '^flags:.*F' "$entry" 2>/dev/null || ! grep -q '^enabled' "$entry" 2>/dev/null; then
    # Register it ourselves (the magic and mask of Debian's qemu-user-static entry).
    [ ! -e "$entry" ] || echo -1 > "$entry"
    printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:FP' \
      > "$bm/register" 2>/dev/null || true
  fi
  grep -q '^flags:.*F' "$entry" 2>/dev/null && grep -q '^enabled' "$entry" 2>/dev/null \
    || die "qemu-aarch64 is not registered in binfmt_misc with the F flag: run 'update-binfmts --enable qemu-aarch64' (package qemu-user-static)"
}

# --------------------------------------------------------------------------- 2. root filesystem

STAMP="$ROOTFS/.emulate-rpi-complete"
STAMP_WANT="suite=$SUITE arch=$ARCH packages=$PACKAGES"

build_rootfs() {
  if [ "$REBUILD" = 0 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$STAMP_WANT" ]; then
    say "root filesystem: $ROOTFS (cached)"
    return
  fi
  local t0=$SECONDS partial="$ROOTFS.partial"
  unmount_all || die "cannot unmount everything under $ROOTFS; see the list above"
  if [ -e "$ROOTFS" ]; then
    say "removing $( [ "$REBUILD" = 1 ] && echo 'the old' || echo 'an incomplete or outdated') root filesystem $ROOTFS"
    rm -rf --one-file-system "$ROOTFS"
  fi
  unmount_all "$partial" || die "cannot unmount what an interrupted build left under $partial"
  rm -rf --one-file-system "$partial"
  say "building Debian $SUITE $ARCH with $PACKAGES into $ROOTFS (about 3-5 minutes)"
  # shellcheck disable=SC2086
  mmdebstrap --arch="$ARCH" --include="$PACKAGES" "$SUITE" "$partial" $MIRROR >"$WORK/mmdebstrap.log" 2>&1 \
    || { tail -n 30 "$WORK/mmdebstrap.log" >&2; rm -rf --one-file-system "$partial"; die "mmdebstrap failed (log above)"; }
  mv "$partial" "$ROOTFS"
  echo "$STAMP_WANT" > "$STAMP"
  TIMES[rootfs]=$((SECONDS - t0))
  say "root filesystem built in ${TIMES[rootfs]} s"
}

# --------------------------------------------------------------------------- 3. prepare and mount

# What a Pi 400 shows in /proc/cpuinfo for its four cores (the board lines are left out: this is
# not a real board, and the harness must not record one).
write_cpuinfo() {
  local i
  for i in $(seq 0 $((NCPU - 1))); do
    printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$i"
    printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n'
  done
}

# A fake /sys with only what the aarch64 libraries read: the CPU lists and each core's MIDR_EL1
# (pytorch/cpuinfo inside ONNX Runtime). No cpufreq, hwmon or device tree: the harness then records
# no governor and no power meter, as it should for an emulated run.
write_fake_sys() {
  local c="$ROOTFS/sys/devices/system/cpu" i
  mkdir -p "$c"
  for f in possible present online; do echo "0-$((NCPU - 1))" > "$c/$f"; done
  echo > "$c/offline"
  echo "$((NCPU - 1))" > "$c/kernel_max"
  for i in $(seq 0 $((NCPU - 1))); do
    mkdir -p "$c/cpu$i/regs/identification"
    echo "$MIDR" > "$c/cpu$i/regs/identification/midr_el1"
    echo 0x0000000000000000 > "$c/cpu$i/regs/identification/revidr_el1"
  done
}

mount_rootfs() {
  unmount_all || die "cannot unmount what a previous run left under $ROOTFS"
  local r="$ROOTFS" n
  mount -t proc proc "$r/proc"
  write_cpuinfo > "$WORK/cpuinfo"
  mount --bind "$WORK/cpuinfo" "$r/proc/cpuinfo"
  mount -o remount,bind,ro "$r/proc/cpuinfo"
  # A private /dev: the host's basic nodes, a fresh /dev/shm (multiprocessing's semaphores) and ptys.
  mount -t tmpfs -o mode=0755,nosuid emu-dev "$r/dev"
  for n in null zero full random urandom tty; do
    touch "$r/dev/$n"
    mount --bind "/dev/$n" "$r/dev/$n"
  done
  ln -s /proc/self/fd "$r/dev/fd"
  ln -s /proc/self/fd/0 "$r/dev/stdin"
  ln -s /proc/self/fd/1 "$r/dev/stdout"
  ln -s /proc/self/fd/2 "$r/dev/stderr"
  mkdir -m 1777 "$r/dev/shm"
  mount -t tmpfs -o mode=1777,nosuid,nodev emu-shm "$r/dev/shm"
  mkdir "$r/dev/pts"
  if mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 emu-devpts "$r/dev/pts" 2>/dev/null; then
    ln -s pts/ptmx "$r/dev/ptmx"
  fi
  mount -t tmpfs -o mode=0755,nosuid,nodev emu-sys "$r/sys"
  write_fake_sys
}

prepare_rootfs() {
  local r="$ROOTFS"
  # pip inside needs the host's DNS and CA bundle (the host may trust extra CAs, e.g. a proxy's).
  rm -f "$r/etc/resolv.conf"
  cat /etc/resolv.conf > "$r/etc/resolv.conf" 2>/dev/null \
    || say "warning: the host has no readable /etc/resolv.conf; name lookups on the device may fail"
  cp /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/ca-certificates.crt"
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    mkdir -p "$r/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$r/usr/local/share/ca-certificates/"
  fi
  mount_rootfs
  env QEMU_CPU=$QEMU_CPU_MODEL chroot "$r" /bin/true 2>"$WORK/true.err" \
    || { cat "$WORK/true.err" >&2; die "aarch64 programs do not run in $r (binfmt/qemu): see above; try --rebuild"; }
  if ! grep -q '^pi:' "$r/etc/passwd"; then
    say "creating user pi (uid $PI_UID)"
    env QEMU_CPU=$QEMU_CPU_MODEL chroot "$r" useradd -m -u "$PI_UID" -U -s /bin/bash pi
  fi
}

# The device's environment: a clean login-like one, plus what pip needs to get out.
CHROOT_BIN="$(command -v chroot)"
DEV_ENV=(HOME="$DEV_HOME" USER=pi LOGNAME=pi SHELL=/bin/bash PATH=/usr/local/bin:/usr/bin:/bin
  LANG=C.UTF-8 TERM="${TERM:-dumb}" QEMU_CPU="$QEMU_CPU_MODEL"
  HARNESS_EMULATED="$EMULATED" HARNESS_MACHINE=rpi
  SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt
  REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1
  PIP_DEFAULT_TIMEOUT="${PIP_DEFAULT_TIMEOUT:-120}")
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY PIP_TRUSTED_HOST \
         PIP_INDEX_URL PIP_EXTRA_INDEX_URL; do
  val="${!v:-}"
  case "$v:$val" in
    *:) ;;
    PIP_*INDEX_URL:*file:*) ;;          # host folders do not exist on the device
    *) DEV_ENV+=("$v=$val") ;;
  esac
done

# dev_run SCRIPT [ARGS...]: bash -c SCRIPT as pi in the project copy on the device.
dev_run() {
  local script="$1"; shift
  env -i "${DEV_ENV[@]}" "$CHROOT_BIN" --userspec="$PI_UID:$PI_UID" "$ROOTFS" \
    /bin/bash -c "cd $DEV_TREE && $script" bash "$@"
}

# --------------------------------------------------------------------------- 4. the project

# The working tree as git sees it (tracked + untracked, not ignored): no .venv, .cache, results.
copy_project() {
  local dest="$ROOTFS$DEV_TREE"
  mkdir -p "$dest"
  find "$dest" -mindepth 1 -maxdepth 1 ! -name .venv -exec rm -rf --one-file-system {} +
  if git -c safe.directory="$ROOT" -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -c safe.directory="$ROOT" -C "$ROOT" ls-files -co --exclude-standard -z \
      | while IFS= read -r -d '' f; do
          if [ -e "$ROOT/$f" ] || [ -L "$ROOT/$f" ]; then printf '%s\0' "$f"; fi   # skip deleted files
        done \
      | tar -C "$ROOT" --null -T - -cf - | tar -C "$dest" --no-same-owner -xf -
  else
    say "warning: $ROOT is not a git checkout; copying it without .git, .venv, .cache, results, plots"
    tar -C "$ROOT" --exclude=./.git --exclude=./.venv --exclude=./.cache --exclude='./results/*' \
      --exclude='./plots/*' --exclude='*.egg-info' --exclude=__pycache__ -cf - . | tar -C "$dest" --no-same-owner -xf -
  fi
  find "$dest" -mindepth 1 -maxdepth 1 ! -name .venv -exec chown -R "$PI_UID:$PI_UID" {} +
  chown "$PI_UID:$PI_UID" "$dest"
  say "project copied to $DEV_TREE ($(find "$dest" -path "$dest/.venv" -prune -o -type f -print | wc -l) files; device venv kept)"
}

# --------------------------------------------------------------------------- 5. host export

host_export() {
  local t0=$SECONDS hvenv="${HARNESS_VENV:-$ROOT/.venv}" export_dir="$WORK/onnx"
  say "host: bootstrapping $hvenv"
  host_run "$ROOT/scripts/bootstrap.sh" || die "host bootstrap failed: run $ROOT/scripts/bootstrap.sh and fix it first"
  host_run "$hvenv/bin/python" -m harness export --help >/dev/null 2>&1 \
    || die "this harness has no 'python -m harness export' command (needed to export ONNX on the host)"
  mkdir -p "$export_dir"
  chown "$OWNER" "$export_dir" 2>/dev/null || true
  chmod 755 "$WORK"
  say "host: exporting $MODELS at x$SCALE to ONNX"
  if ! host_run "$hvenv/bin/python" -m harness export --pool none --models "$MODELS" --scale "$SCALE" \
         --out "$export_dir" 2>&1 | tee "$WORK/logs/export.log" >&2; then
    die "host export failed (log above)"
  fi
  [ -f "$export_dir/manifest.json" ] || die "host export wrote no manifest.json into $export_dir"
  rm -rf --one-file-system "$ROOTFS$DEV_ONNX"
  cp -r "$export_dir" "$ROOTFS$DEV_ONNX"
  chown -R "$PI_UID:$PI_UID" "$ROOTFS$DEV_ONNX"
  TIMES[export]=$((SECONDS - t0))
  say "host: $(find "$export_dir" -name '*.onnx' | wc -l) ONNX files copied to $DEV_ONNX (${TIMES[export]} s)"
}

# --------------------------------------------------------------------------- 6. device steps

declare -A RC=()
mkdir -p "$WORK/logs"

# step NAME SCRIPT [ARGS...]: run on the device, log to logs/NAME.log, keep going on failure.
step() {
  local name="$1" t0=$SECONDS; shift
  say "device: $name"
  set +e
  dev_run "$@" 2>&1 | tee "$WORK/logs/$name.log"
  RC[$name]=${PIPESTATUS[0]}
  set -e
  TIMES[$name]=$((SECONDS - t0))
  say "device: $name exited ${RC[$name]} after ${TIMES[$name]} s"
}

# --------------------------------------------------------------------------- 7. checks

# Runs inside the device as pi, from the project copy; prints PASS/FAIL lines, exits 1 on a FAIL.
VERIFY_PY='
import glob, importlib.util, json, os, sqlite3, subprocess, sys
fails = 0
def check(ok, what):
    global fails
    print(("PASS  " if ok else "FAIL  ") + what)
    fails += 0 if ok else 1
vpy = ".venv/bin/python"
def venv(code):
    p = subprocess.run([vpy, "-c", code], capture_output=True, text=True)
    return p.returncode, p.stdout.strip() or p.stderr.strip()
if not os.path.exists(vpy):
    check(False, "device venv .venv exists")
else:
    rc, out = venv("import onnxruntime; print(onnxruntime.__version__)")
    check(rc == 0, "onnxruntime in the device venv: " + (out.splitlines() or ["?"])[-1])
    rc, out = venv("import torch")
    check(rc != 0, "no torch in the device venv (import torch fails)" if rc else "torch is installed in the device venv")
db = "results/harness.db"
if not os.path.exists(db):
    check(False, "results store " + db + " exists")
else:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    run = con.execute("SELECT * FROM runs ORDER BY started DESC LIMIT 1").fetchone()
    check(run is not None, "a run in " + db)
    if run is not None:
        prof = json.loads(run["profile"] or "{}")
        env = json.loads(run["environment"] or "{}")
        check(run["device"] == "rpi" and prof.get("name") == "rpi",
              "run %s used device profile %r" % (run["run_id"], prof.get("name")))
        check(prof.get("threads") == 4, "rpi profile threads = %r" % prof.get("threads"))
        check(env.get("machine") == "aarch64", "environment machine = %r" % env.get("machine"))
        vers = env.get("versions") or {}
        check(vers.get("torch") is None, "environment records torch = %r" % vers.get("torch"))
        emu = os.environ.get("HARNESS_EMULATED", "")
        check(emu and emu in (run["environment"] or "") + (run["profile"] or ""),
              "run recorded as emulated (%r in its environment)" % emu)
        rows = con.execute("SELECT measurement, status, model, scale, reason, data FROM measurements "
                           "WHERE run_id = ?", (run["run_id"],)).fetchall()
        speed = [r for r in rows if r["measurement"] == "speed"]
        quality = [r for r in rows if r["measurement"].startswith("quality")]
        ok = lambda rs: sum(r["status"] == "ok" for r in rs)
        check(speed and ok(speed) == len(speed), "speed rows ok: %d of %d" % (ok(speed), len(speed)))
        check(quality and ok(quality) == len(quality), "quality rows ok: %d of %d" % (ok(quality), len(quality)))
        for r in rows:
            if r["status"] != "ok":
                print("      %s %s x%s: %s: %s" % (r["measurement"], r["model"], r["scale"], r["status"], r["reason"]))
        # the ONNX Runtime threads of each speed row, where the harness records them
        threads = set()
        for r in speed:
            d = json.loads(r["data"] or "{}")
            for src in (d, d.get("session") or {}):
                for k in ("threads", "intra_op_threads", "intra_op_num_threads"):
                    if isinstance(src, dict) and src.get(k) is not None:
                        threads.add(str(src[k]))
        if threads:
            check(threads == {"4"}, "speed rows ran with threads %s" % ",".join(sorted(threads)))
# doctor: every required check ok, except those emulation cannot pass
EXPECTED = {"python", "board", "throttled", "governor"}  # emulated; no Pi board, vcgencmd or cpufreq
try:
    doc = json.load(open("results/doctor_rpi.json"))
    bad = [c for c in doc["checks"] if c.get("required") and c.get("status") != "ok"]
    for c in doc["checks"]:
        print("      doctor %-7s %-14s %s" % (c.get("status"), c.get("name"), c.get("value")))
    other = [c["name"] for c in bad if c["name"] not in EXPECTED]
    check(not other, "doctor --device rpi: %d checks; required not ok: %s%s" % (
        len(doc["checks"]), ", ".join(c["name"] for c in bad) or "none",
        " (expected under emulation)" if not other else " (%s unexpected)" % ", ".join(other)))
except (OSError, ValueError, KeyError, TypeError) as exc:
    check(False, "doctor --device rpi wrote results/doctor_rpi.json (%s)" % exc)
for f in ("results/results_rpi.csv", "results/summary_rpi.json", "results/report.html"):
    check(os.path.exists(f) and os.path.getsize(f) > 0, f + " written")
if os.path.exists("results/summary_rpi.json"):
    try:
        n = len(json.load(open("results/summary_rpi.json")))
    except ValueError:
        n = 0
    check(n > 0, "summary_rpi.json has %d rows" % n)
pngs = glob.glob("plots/*.png")
check(len(pngs) > 0, "%d figures in plots/*.png" % len(pngs))
sys.exit(1 if fails else 0)
'

copy_back() {
  local src="$ROOTFS$DEV_TREE"
  if [ -e "$OUT" ] && [ ! -f "$OUT/.emulate-rpi" ] && [ -n "$(ls -A "$OUT" 2>/dev/null)" ]; then
    say "warning: $OUT exists and was not made by this script; results not copied back (use --out)"
    return 1
  fi
  mkdir -p "$OUT"
  rm -rf --one-file-system "$OUT/results" "$OUT/plots" "$OUT/logs"
  touch "$OUT/.emulate-rpi"
  [ ! -d "$src/results" ] || cp -r "$src/results" "$OUT/results"
  [ ! -d "$src/plots" ] || cp -r "$src/plots" "$OUT/plots"
  cp -r "$WORK/logs" "$OUT/logs"
  [ "$OWNER" = root ] || chown -R "$OWNER" "$OUT" 2>/dev/null || true
}

# --------------------------------------------------------------------------- main

check_prerequisites
check_binfmt
build_rootfs
prepare_rootfs

if [ "$SHELL_ONLY" = 1 ]; then
  [ -d "$ROOTFS$DEV_TREE" ] || copy_project
  say "shell as pi in $DEV_TREE (HARNESS_MACHINE=rpi, QEMU_CPU=$QEMU_CPU_MODEL); exit to unmount"
  set +e
  env -i "${DEV_ENV[@]}" "$CHROOT_BIN" --userspec="$PI_UID:$PI_UID" "$ROOTFS" /bin/bash -c "cd $DEV_TREE && exec /bin/bash -l"
  exit $?
fi

copy_project
host_export

step bootstrap './scripts/bootstrap.sh'
# doctor exits 1 here by design (emulated, no Pi board, no vcgencmd); the checks judge its JSON.
step doctor '.venv/bin/python -m harness doctor --device rpi --json > results/doctor_rpi.json'
step run_all './run_all.sh --device rpi --onnx-dir "$1" --pool none --models "$2" --scale "$3" --repeats 1' \
  "$DEV_ONNX" "$MODELS" "$SCALE"
if [ "$RUN_TESTS" = 1 ]; then
  step tests ".venv/bin/python -c 'import pytest' 2>/dev/null || .venv/bin/python -m pip install -q pytest; .venv/bin/python -m pytest -q $TESTS"
fi

say "checks:"
set +e
dev_run '/usr/bin/python3 -c "$1"' "$VERIFY_PY" | tee "$WORK/logs/checks.log"
checks_rc=${PIPESTATUS[0]}
set -e
copy_back || checks_rc=1

fail=0
for name in bootstrap run_all tests; do   # doctor's exit status is judged by the checks
  [ -n "${RC[$name]:-}" ] || continue
  if [ "${RC[$name]}" = 0 ]; then echo "PASS  $name exited 0 (${TIMES[$name]} s)"; else echo "FAIL  $name exited ${RC[$name]} (log: $OUT/logs/$name.log)"; fail=1; fi
done
[ "$checks_rc" = 0 ] || fail=1
took() { if [ -n "${TIMES[$1]:-}" ]; then echo "${TIMES[$1]} s"; else echo "$2"; fi; }
say "timings: rootfs $(took rootfs cached), export $(took export -), bootstrap $(took bootstrap -)," \
    "doctor $(took doctor -), run_all $(took run_all -), tests $(took tests skipped), total $((SECONDS - T_START)) s"
say "results, plots and logs in $OUT"
if [ "$fail" = 0 ]; then say "PASS: the harness ran as on a Raspberry Pi 400 (emulated: $EMULATED)"; else say "FAIL: see the lines above"; fi
exit "$fail"
