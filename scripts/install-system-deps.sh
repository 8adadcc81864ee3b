#!/usr/bin/env bash
# Debian packages the tests need: redis-server (oauth2-proxy's server-side session store),
# slapd + ldap-utils (OpenLDAP behind Dex's LDAP connector; tests/stack/ldap.py),
# squid + tinyproxy (real forward proxies, for HTTP(S)_PROXY and NO_PROXY),
# shellcheck (actionlint checks the release workflow's run: scripts with it),
# and chromium + chromium-driver (the headless browser of the browser-login test, via selenium).
# Installed only when missing; needs root (as on this project's machines and in CI).
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v openssl >/dev/null || missing+=(openssl)
# slapd lives in /usr/sbin, which a non-root PATH may lack.
[ -x /usr/sbin/slapd ] || missing+=(slapd)
command -v ldapsearch >/dev/null || missing+=(ldap-utils)
[ -x /usr/bin/tinyproxy ] || missing+=(tinyproxy)
[ -x /usr/sbin/squid ] || missing+=(squid)
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "install-system-deps: need ${missing[*]}; run as root, or: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "install-system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# The tests run their own slapd with their own config in a temp folder. Telling the
# package to omit its configuration means it creates no system directory (and asks
# for no admin password), and its system service, having no config, stays stopped.
echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
