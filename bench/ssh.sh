#!/usr/bin/env bash
# How an SSH destination should write an unchanged snapshot: rsync --link-dest
# over ssh (Hindsight's first version) against SFTP hardlink requests
# (hardlink@openssh.com, one per file, as the `sftp` client sends them).
# Hindsight now streams a tar of link entries into GNU tar on the server;
# bench/remote.sh measures that against restic (see bench/README.md).
#
#   bench/ssh.sh [FILES]          (default 5000 files of 4 KiB)
#
# Needs a server: source the env printed by
#   SSH_PORT=2242 bash scripts/services/sshd.sh start /tmp/some-state
# (SSH_HOST SSH_PORT SSH_USER SSH_KEY SSH_KNOWN_HOSTS). Everything it writes on
# the server is under bench-ssh-<pid>/ in the user's home, removed at the end.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

N="${1:-5000}"
for v in SSH_HOST SSH_PORT SSH_USER SSH_KEY SSH_KNOWN_HOSTS; do
    [ -n "${!v:-}" ] || die "$v is not set: start scripts/services/sshd.sh and export its env"
done
command -v rsync >/dev/null || die "rsync is required"
work="$(mktemp -d /var/tmp/bench-ssh.XXXXXX)"
remote="bench-ssh-$$"
opts=(-i "$SSH_KEY" -o "UserKnownHostsFile=$SSH_KNOWN_HOSTS" -o StrictHostKeyChecking=yes -o BatchMode=yes
    -o IdentitiesOnly=yes -o ControlMaster=auto -o "ControlPath=$work/cm" -o ControlPersist=30 -p "$SSH_PORT")
rsh="ssh ${opts[*]}"
on_server() { ssh "${opts[@]}" "$SSH_USER@$SSH_HOST" "$@"; }
cleanup() {
    on_server "rm -rf $remote" || true
    ssh "${opts[@]}" -O exit "$SSH_USER@$SSH_HOST" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

log "making $N files of 4 KiB in 10 directories"
for d in $(seq 0 9); do
    mkdir -p "$work/src/d$d"
    for i in $(seq 0 $((N / 10 - 1))); do head -c 4096 /dev/urandom >"$work/src/d$d/f$i"; done
done
on_server "mkdir -p $remote"
secs() { python3 -c 'import sys,time; print(f"{time.time()-float(sys.argv[1]):.2f}")' "$1"; }

t=$(date +%s.%N)
rsync -aHAXS --numeric-ids -e "$rsh" "$work/src/" "$SSH_USER@$SSH_HOST:$remote/s1/"
full=$(secs "$t")
log "full copy (rsync): ${full}s"

t=$(date +%s.%N)
rsync -aHAXS --numeric-ids --link-dest=../s1/ -e "$rsh" "$work/src/" "$SSH_USER@$SSH_HOST:$remote/s2/"
link=$(secs "$t")
log "unchanged snapshot (rsync --link-dest): ${link}s"

batch="$work/batch"
{
    echo "mkdir $remote/s3"
    for d in $(seq 0 9); do
        echo "mkdir $remote/s3/d$d"
        for i in $(seq 0 $((N / 10 - 1))); do echo "ln $remote/s1/d$d/f$i $remote/s3/d$d/f$i"; done
    done
} >"$batch"
t=$(date +%s.%N)
sftp -q -b "$batch" "${opts[@]/#-p/-P}" "$SSH_USER@$SSH_HOST" >/dev/null
sftp_ln=$(secs "$t")
log "unchanged snapshot (sftp ln, one hardlink@openssh.com request per file, sequential): ${sftp_ln}s"

links=$(on_server "stat -c %h $remote/s2/d0/f0 $remote/s3/d0/f0" | tr '\n' ' ')
echo "files=$N full_rsync_s=$full link_dest_s=$link sftp_hardlink_s=$sftp_ln link_counts=[$links]"
echo "(sftp ln sets no metadata: a real SFTP writer also needs a setstat per changed entry and the"
echo " directory metadata, and must read back every directory's listing to compare; rsync does all that in one stream)"
