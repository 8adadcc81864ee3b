"""A real OpenLDAP ``slapd`` (Debian's package; scripts/install-system-deps.sh installs
it) for Dex's LDAP connector, as Kubeflow sites run it next to the local connector.

slapd runs in the foreground on a free loopback port with an old-style slapd.conf
(``-f``) and an mdb database, both in a temp folder, seeded offline with slapadd.
Nothing of the system's slapd (its service, /etc/ldap/slapd.d) is used.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from . import Proc, StackError, free_port

SUFFIX = "dc=example,dc=org"
PEOPLE = f"ou=People,{SUFFIX}"
GROUPS = f"ou=Groups,{SUFFIX}"
# The DN Dex binds as to search for users (slapd's rootdn, as in Dex's and Kubeflow's examples).
BIND_DN = f"cn=admin,{SUFFIX}"
BIND_PW = "admin-test-password"

# The one LDAP user: logs in to Dex as LDAP_USER (uid); Dex's ID token, and so
# oauth2-proxy's X-Forwarded-Email, carries LDAP_EMAIL (mail).
LDAP_USER = "ldapuser"
LDAP_PASSWORD = "ldap-test-password"
LDAP_EMAIL = "ldapuser@example.org"
LDAP_NAMESPACE = "kubeflow-ldapuser"
LDAP_GROUP = "kubeflow-users"

# A user in many groups, as in large directories: Dex puts every group in the ID
# token, so oauth2-proxy's session cookie outgrows 4 KB and is split into chunks.
MANY_GROUPS_USER = "manygroups"
MANY_GROUPS_EMAIL = "manygroups@example.org"
MANY_GROUPS = [f"kubeflow-team-with-a-long-descriptive-group-name-{i:03d}" for i in range(80)]


def ssha(password: str) -> str:
    """RFC 2307 {SSHA}, which slapd checks binds against (so the seed holds no clear password)."""
    salt = os.urandom(8)
    return "{SSHA}" + base64.b64encode(hashlib.sha1(password.encode() + salt).digest() + salt).decode()


def _tool(name: str) -> str:
    # slapd and slapadd live in /usr/sbin, which a non-root PATH may lack.
    path = shutil.which(name, path=os.environ.get("PATH", "") + os.pathsep + "/usr/sbin")
    if path is None:
        raise StackError(f"{name} is not installed: run scripts/install-system-deps.sh (Debian's slapd, ldap-utils)")
    return path


def _config(d: Path) -> str:
    # Debian builds back_mdb as a module in /usr/lib/ldap and ships the schemas in /etc/ldap/schema.
    return f"""\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile {d}/slapd.pid
argsfile {d}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb

database mdb
maxsize 16777216
suffix "{SUFFIX}"
rootdn "{BIND_DN}"
rootpw {ssha(BIND_PW)}
directory {d}/db
# Passwords are only for binding; the rootdn (Dex's bind DN) bypasses these rules.
access to attrs=userPassword by anonymous auth by self read by * none
access to * by users read by * none
"""


def _seed() -> str:
    return (
        f"""\
dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: {PEOPLE}
objectClass: organizationalUnit
ou: People

dn: {GROUPS}
objectClass: organizationalUnit
ou: Groups

"""
        + _person(LDAP_USER, "LDAP User", LDAP_EMAIL, [LDAP_GROUP])
        + _person(MANY_GROUPS_USER, "Many Groups", MANY_GROUPS_EMAIL, MANY_GROUPS)
    )


def _person(uid: str, name: str, mail: str, groups: list[str]) -> str:
    """An inetOrgPerson with the test password, and a groupOfNames for each of its groups."""
    entry = f"""
dn: uid={uid},{PEOPLE}
objectClass: inetOrgPerson
uid: {uid}
cn: {name}
sn: {name.split()[-1]}
mail: {mail}
userPassword: {ssha(LDAP_PASSWORD)}
"""
    return entry + "".join(
        f"""
dn: cn={g},{GROUPS}
objectClass: groupOfNames
cn: {g}
member: uid={uid},{PEOPLE}
"""
        for g in groups
    )


def start_slapd(workdir: Path) -> tuple[Proc, int]:
    """Write the config, seed the directory, start slapd on ldap://127.0.0.1:<port>/ and wait for it."""
    slapd = _tool("slapd")
    d = workdir / "slapd"
    (d / "db").mkdir(parents=True, exist_ok=True)
    conf, seed = d / "slapd.conf", d / "seed.ldif"
    conf.write_text(_config(d))
    seed.write_text(_seed())
    r = subprocess.run(
        [_tool("slapadd"), "-f", str(conf), "-b", SUFFIX, "-l", str(seed)], capture_output=True, text=True
    )
    if r.returncode != 0:
        raise StackError(f"slapadd could not seed the directory:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    port = free_port()
    # -d keeps slapd in the foreground (so Proc can stop it); 256 logs connections and operations.
    proc = Proc(
        "slapd",
        [slapd, "-d", "256", "-f", str(conf), "-h", f"ldap://127.0.0.1:{port}/"],
        f"tcp://127.0.0.1:{port}",
        workdir / "slapd.log",
    )
    proc.start()
    return proc, port


def dex_ldap_connector(port: int) -> dict:
    """Dex's LDAP connector for this slapd, in the shape Kubeflow's Dex docs give (plain LDAP on loopback)."""
    return {
        "type": "ldap",
        "id": "ldap",
        "name": "OpenLDAP",
        "config": {
            "host": f"127.0.0.1:{port}",
            "insecureNoSSL": True,
            "bindDN": BIND_DN,
            "bindPW": BIND_PW,
            "usernamePrompt": "Username",
            "userSearch": {
                "baseDN": PEOPLE,
                "filter": "(objectClass=inetOrgPerson)",
                "username": "uid",
                "idAttr": "uid",
                "emailAttr": "mail",
                "nameAttr": "cn",
            },
            "groupSearch": {
                "baseDN": GROUPS,
                "filter": "(objectClass=groupOfNames)",
                "userMatchers": [{"userAttr": "DN", "groupAttr": "member"}],
                "nameAttr": "cn",
            },
        },
    }
