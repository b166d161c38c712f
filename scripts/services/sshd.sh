#!/usr/bin/env bash
# SSH/SFTP test server: a private OpenSSH sshd on 127.0.0.1:SSH_PORT with its
# own host key and sshd_config in the state dir, key-only login for a
# dedicated user. Backups need GNU tar and find there (Essential packages on
# Debian); rsync is installed for the tests that restore with it.
# Runs as root; leaves the system sshd, port 22 and /etc/ssh alone.
#
#   scripts/services/sshd.sh start|stop|status|env|install [STATE_DIR]
#
# Env: SSH_PORT (2232), SSH_USER (hsremote), SSHD_STATE_DIR.
# Prints SSH_HOST SSH_PORT SSH_USER SSH_KEY (client private key)
# SSH_KNOWN_HOSTS SSH_CONFIG (client config, host alias hindsight-sshd)
# SSH_REMOTE_HOME.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/lib.sh"
hs_init sshd SSHD "$@"

PORT="${SSH_PORT:-2232}"
USER_NAME="${SSH_USER:-hsremote}"

do_install() {
    hs_apt_install openssh-server openssh-sftp-server openssh-client rsync
}

do_start() {
    [ "$(id -u)" = 0 ] || hs_die "must run as root"
    hs_require_free_port "$PORT"
    if ! id "$USER_NAME" >/dev/null 2>&1; then
        hs_log "creating user $USER_NAME"
        useradd -m -s /bin/bash "$USER_NAME"
    fi
    # useradd locks the password ('!'); without PAM, sshd refuses even key
    # logins to a locked account, so make it "no password" ('*') instead.
    if [ "$(getent shadow "$USER_NAME" | cut -d: -f2 | cut -c1)" = "!" ]; then
        usermod -p '*' "$USER_NAME"
    fi
    # sshd reads authorized_keys as the user: the state dir must be traversable.
    chmod 755 "$STATE"
    [ -f "$STATE/host_key" ] || ssh-keygen -q -t ed25519 -N '' -C hindsight-test-host -f "$STATE/host_key"
    [ -f "$STATE/client_key" ] || ssh-keygen -q -t ed25519 -N '' -C hindsight-test-client -f "$STATE/client_key"
    install -m 644 "$STATE/client_key.pub" "$STATE/authorized_keys"
    echo "[127.0.0.1]:$PORT $(cut -d' ' -f1,2 "$STATE/host_key.pub")" >"$STATE/known_hosts"
    # StrictModes off: the state dir may sit under the world-writable /tmp.
    cat >"$STATE/sshd_config" <<EOF
Port $PORT
ListenAddress 127.0.0.1
HostKey $STATE/host_key
PidFile $STATE/sshd.pid
AuthorizedKeysFile $STATE/authorized_keys
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers $USER_NAME
UsePAM no
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
LogLevel VERBOSE
MaxStartups 100:30:200
MaxSessions 50
Subsystem sftp internal-sftp
EOF
    cat >"$STATE/ssh_config" <<EOF
Host hindsight-sshd
  HostName 127.0.0.1
  Port $PORT
  User $USER_NAME
  IdentityFile $STATE/client_key
  IdentitiesOnly yes
  UserKnownHostsFile $STATE/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
EOF
    mkdir -p /run/sshd # privilege separation directory
    chmod 755 /run/sshd
    /usr/sbin/sshd -t -f "$STATE/sshd_config"
    hs_spawn /usr/sbin/sshd -D -e -f "$STATE/sshd_config"
    hs_wait_port "$PORT" 20
    hs_emit_env <<EOF
SSH_HOST=127.0.0.1
SSH_PORT=$PORT
SSH_USER=$USER_NAME
SSH_KEY=$STATE/client_key
SSH_KNOWN_HOSTS=$STATE/known_hosts
SSH_CONFIG=$STATE/ssh_config
SSH_REMOTE_HOME=$(getent passwd "$USER_NAME" | cut -d: -f6)
EOF
}

hs_main
