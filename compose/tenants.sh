#!/bin/sh
# The compose example's one-shot `tenants` service (lethe image): makes the example's
# registry the one in force, adds the sample tenants 1..$TENANTS, and turns archiving on for
# tenants 1 and 2 with the SFTP site `sftp` (their expired rows are archived, uploaded and
# only then deleted). Runs once: it stops at once when tenant 1 exists.
set -eu
tenants=${TENANTS:-12}
if lethe account show 1 >/dev/null 2>&1; then
    echo "tenants: already set up"
    exit 0
fi
lethe policy sync
lethe account add $(seq 1 "$tenants")
for account in 1 2; do
    # A random archive key per tenant, sealed under the master key (never printed); the
    # suffix makes sure it has upper- and lower-case letters and digits.
    (head -c 24 /dev/urandom | base64 | tr -d '\n'; echo "Aa1") \
        | lethe account archive "$account" --key-file - --enable --auto-delete on --schedule-hour 0
    lethe account site add "$account" "sftp://backup@sftp/srv/backup" \
        --known-hosts /keys/known_hosts --identity /keys/id_ed25519
done
lethe account list
