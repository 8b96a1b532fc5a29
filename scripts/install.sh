#!/bin/sh
# Install notifier as a systemd service (run as root from a checkout): see docs/PRODUCTION.md.
#
#   sudo scripts/install.sh            # install or upgrade; starts nothing
#   sudo systemctl enable --now notifier
#
# What it does (idempotent; an existing /etc/notifier/config.toml or credential is kept):
#   1. /opt/notifier/venv: a virtualenv with this checkout pip-installed (non-editable), and
#      /opt/notifier/docs (the unit's Documentation= link);
#   2. /etc/systemd/system/notifier.service;
#   3. /etc/notifier/config.toml from config.toml with the production lines switched
#      (database under /var/lib/notifier, API token and unsubscribe secret from credentials),
#      plus config.toml.example (the full commented file) for reference;
#   4. /etc/credstore/notifier.api_token and notifier.unsubscribe_secret, generated at random
#      when missing (mode 0600, root); notifier.smtp_password is yours to write.
# Environment: DESTDIR (stage into another root, e.g. for packaging), PYTHON (default python3),
# SKIP_PIP=1 (files only), SKIP_SYSTEMCTL=1 (no daemon-reload).
set -eu

src=$(cd "$(dirname "$0")/.." && pwd)
root="${DESTDIR:-}"
python="${PYTHON:-python3}"
prefix="$root/opt/notifier"
etc="$root/etc/notifier"
credstore="$root/etc/credstore"
unitdir="$root/etc/systemd/system"

if [ -z "$root" ] && [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root (or set DESTDIR to stage the files)" >&2
    exit 1
fi

echo "== $prefix"
install -d -m 0755 "$prefix" "$prefix/docs"
if [ "${SKIP_PIP:-0}" != 1 ]; then
    [ -x "$prefix/venv/bin/python" ] || "$python" -m venv "$prefix/venv"
    "$prefix/venv/bin/python" -m pip install --quiet --upgrade pip
    "$prefix/venv/bin/python" -m pip install --quiet --upgrade "$src"
fi
install -m 0644 "$src/docs/PRODUCTION.md" "$prefix/docs/PRODUCTION.md"

echo "== $unitdir/notifier.service"
install -d -m 0755 "$unitdir"
install -m 0644 "$src/systemd/notifier.service" "$unitdir/notifier.service"

echo "== $etc"
install -d -m 0755 "$etc"
install -m 0644 "$src/config.toml" "$etc/config.toml.example"
if [ ! -e "$etc/config.toml" ]; then
    sed -e 's#^path = "notifier.sqlite3".*#path = "/var/lib/notifier/notifier.sqlite3"#' \
        -e 's#^tokens = \[.*#tokens = ["credential:api_token"]#' \
        -e 's#^unsubscribe_secret = .*#unsubscribe_secret = "credential:unsubscribe_secret"#' \
        -e 's#^\# password = "credential:smtp_password"#password = "credential:smtp_password"#' \
        "$src/config.toml" > "$etc/config.toml.new"
    # The service runs as a dynamic user: the file must be readable by others (no secrets in
    # it; they come from LoadCredential=).
    chmod 0644 "$etc/config.toml.new"
    mv "$etc/config.toml.new" "$etc/config.toml"
    echo "   wrote $etc/config.toml: edit [carriers.*], [email], [api] public_url before starting"
else
    echo "   kept the existing $etc/config.toml"
fi

echo "== $credstore"
install -d -m 0700 "$credstore"
for name in api_token unsubscribe_secret; do
    file="$credstore/notifier.$name"
    if [ ! -e "$file" ]; then
        (umask 077 && "$python" -c 'import secrets; print(secrets.token_urlsafe(32))' > "$file")
        echo "   generated $file"
    fi
done
if [ ! -e "$credstore/notifier.smtp_password" ]; then
    echo "   missing $credstore/notifier.smtp_password: write the SMTP relay password there"
    echo "   (umask 077; printf '%s' 'PASSWORD' > $credstore/notifier.smtp_password)"
fi

if [ -z "$root" ] && [ "${SKIP_SYSTEMCTL:-0}" != 1 ] && command -v systemctl >/dev/null; then
    systemctl daemon-reload
fi
echo "done. Next: systemctl enable --now notifier; journalctl -u notifier -f"
