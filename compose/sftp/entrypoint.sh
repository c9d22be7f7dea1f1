#!/bin/sh
# First start: a host key, lethe's client key (ed25519: libssh2 1.10 signs RSA keys with
# SHA-1, which OpenSSH 9 refuses), authorized_keys and a known_hosts line for host `sftp`.
# The client key belongs to uid 10001, the lethe image's user. Then sshd in the foreground.
set -eu
umask 022
if [ ! -s /keys/known_hosts ]; then
    ssh-keygen -q -t ed25519 -N '' -f /keys/ssh_host_ed25519_key
    ssh-keygen -q -t ed25519 -N '' -C lethe -f /keys/id_ed25519
    cp /keys/id_ed25519.pub /keys/authorized_keys
    chown 10001:10001 /keys/id_ed25519
    chmod 600 /keys/id_ed25519
    echo "sftp $(cut -d' ' -f1-2 /keys/ssh_host_ed25519_key.pub)" > /keys/known_hosts.tmp
    mv /keys/known_hosts.tmp /keys/known_hosts
fi
exec /usr/sbin/sshd -D -e
