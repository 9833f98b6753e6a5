#!/usr/bin/env python3
"""Self-test of the SQL test servers started by scripts/sql/up.sh.

    scripts/sql/check.py [STATE_DIR]

Endpoints come from STATE_DIR/env.sh when STATE_DIR is given, else from the
PG_URL / MARIADB_URL environment variables (after `source STATE_DIR/env.sh`),
else from ${SQL_STATE_DIR:-/tmp/push-connector-sql}/env.sh.  Uses the psql and
mariadb command-line clients over TCP with the URL's user and password, and the
Python standard library.  A server whose URL is absent (SQL_SERVERS) is
skipped.  Prints one line per check; exits 0 only if every check passes.
"""

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from urllib.parse import unquote, urlsplit


def parse_env_file(path):
    env = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            words = shlex.split(line, comments=True)
            if len(words) == 2 and words[0] == "export" and "=" in words[1]:
                k, v = words[1].split("=", 1)
                env[k] = v
    return env


def load_env():
    if len(sys.argv) > 1:
        return parse_env_file(os.path.join(sys.argv[1], "env.sh"))
    if "PG_URL" in os.environ or "MARIADB_URL" in os.environ:
        return dict(os.environ)
    state = os.environ.get("SQL_STATE_DIR", "/tmp/push-connector-sql")
    return parse_env_file(os.path.join(state, "env.sh"))


ENV = load_env()
if "PG_URL" not in ENV and "MARIADB_URL" not in ENV:
    sys.exit("check.py: neither PG_URL nor MARIADB_URL set; run scripts/sql/up.sh first")

results = []


def check(name):
    def run(fn):
        t0 = time.monotonic()
        try:
            detail = fn() or ""
            ok = True
        except Exception as e:  # noqa: BLE001 -- report any failure as a failed check
            detail = f"{type(e).__name__}: {e}"
            ok = False
        ms = (time.monotonic() - t0) * 1000
        results.append(ok)
        print(f"{'PASS' if ok else 'FAIL'}  {name:<22} {detail} ({ms:.0f} ms)", flush=True)
        return fn
    return run


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def tool(name):
    path = shutil.which(name)
    if not path and name == "psql":
        cands = sorted(p for p in (f"/usr/lib/postgresql/{v}/bin/psql" for v in os.listdir("/usr/lib/postgresql"))
                       if os.path.exists(p)) if os.path.isdir("/usr/lib/postgresql") else []
        path = cands[-1] if cands else None
    expect(path, f"{name} not found; run scripts/sql/install.sh")
    return path


def listeners(port):
    """Local addresses listening on TCP `port` (IPv4 and IPv6), from /proc/net."""
    addrs = set()
    for f, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = open(f).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            local, st = cols[1], cols[3]
            ip_hex, port_hex = local.split(":")
            if st != "0A" or int(port_hex, 16) != port:
                continue
            if v6:
                addrs.add("[v6]" + ip_hex)
            else:
                b = bytes.fromhex(ip_hex)[::-1]
                addrs.add(".".join(str(x) for x in b))
    return addrs


def run(cmd, env=None, stdin=None):
    p = subprocess.run(cmd, env=env, input=stdin, capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


TABLE = "check_" + uuid.uuid4().hex[:10]
ROW = ("EMP0001", "Ada", "Lovelace", "ada.lovelace@rxx.nhs.uk", "Staff Nurse – Cardiology")

# --- PostgreSQL -----------------------------------------------------------------

if "PG_URL" in ENV:
    pg = urlsplit(ENV["PG_URL"])

    def psql(sql, password=None):
        env = dict(os.environ, PGPASSWORD=unquote(password if password is not None else pg.password),
                   PGCONNECT_TIMEOUT="5", PGCLIENTENCODING="UTF8")
        return run([tool("psql"), "-h", pg.hostname, "-p", str(pg.port), "-U", unquote(pg.username),
                    "-d", pg.path.lstrip("/"), "-XAtq", "-v", "ON_ERROR_STOP=1", "-F", "|", "-c", sql], env=env)

    @check("postgres connect")
    def _():
        rc, out, err = psql("SELECT current_user, current_database(), split_part(version(), ' ', 2)")
        expect(rc == 0, f"psql exit {rc}: {err.strip()}")
        user, db, ver = out.strip().split("|")
        expect(user == pg.username and db == pg.path.lstrip("/"), f"connected as {user} to {db}")
        addrs = listeners(pg.port)
        expect(addrs == {"127.0.0.1"}, f"listening on {addrs}")
        return f"{ENV['PG_URL']} -> user {user}, db {db}, PostgreSQL {ver}, listening only on 127.0.0.1"

    @check("postgres bad password")
    def _():
        rc, _, err = psql("SELECT 1", password="wrong-" + uuid.uuid4().hex[:6])
        expect(rc != 0 and "password authentication failed" in err, f"exit {rc}: {err.strip()}")
        return "refused: password authentication failed"

    @check("postgres table rw")
    def _():
        rc, out, err = psql(
            f"CREATE TABLE {TABLE} (id serial PRIMARY KEY, employee_id text UNIQUE NOT NULL, "
            f"given_name text, family_name text, email text, title text, "
            f"updated_at timestamptz NOT NULL DEFAULT now());"
            f"INSERT INTO {TABLE} (employee_id, given_name, family_name, email, title) VALUES "
            f"('{ROW[0]}', '{ROW[1]}', '{ROW[2]}', '{ROW[3]}', '{ROW[4]}');"
            f"SELECT employee_id, given_name, family_name, email, title FROM {TABLE};")
        expect(rc == 0, f"psql exit {rc}: {err.strip()}")
        got = tuple(out.strip().split("|"))
        expect(got == ROW, f"read back {got}")
        rc, out, err = psql(f"DROP TABLE {TABLE}")
        expect(rc == 0, f"DROP TABLE: {err.strip()}")
        return f"CREATE TABLE {TABLE}, INSERT, SELECT (UTF-8 intact), DROP"

# --- MariaDB --------------------------------------------------------------------

if "MARIADB_URL" in ENV:
    my = urlsplit(ENV["MARIADB_URL"])

    def mariadb(sql, password=None):
        env = dict(os.environ, MYSQL_PWD=unquote(password if password is not None else my.password))
        # --no-defaults: ignore ~/.my.cnf and /etc/mysql; --protocol=TCP: never the default socket.
        return run([tool("mariadb"), "--no-defaults", "--protocol=TCP", "-h", my.hostname, "-P", str(my.port),
                    "-u", unquote(my.username), "--connect-timeout=5", "--default-character-set=utf8mb4",
                    "-N", "-B", "-e", sql, my.path.lstrip("/")], env=env)

    @check("mariadb connect")
    def _():
        rc, out, err = mariadb("SELECT current_user(), database(), version()")
        expect(rc == 0, f"mariadb exit {rc}: {err.strip()}")
        user, db, ver = out.strip().split("\t")
        expect(user.split("@")[0] == my.username and db == my.path.lstrip("/"), f"connected as {user} to {db}")
        addrs = listeners(my.port)
        expect(addrs == {"127.0.0.1"}, f"listening on {addrs}")
        return f"{ENV['MARIADB_URL']} -> user {user}, db {db}, {ver}, listening only on 127.0.0.1"

    @check("mariadb bad password")
    def _():
        rc, _, err = mariadb("SELECT 1", password="wrong-" + uuid.uuid4().hex[:6])
        expect(rc != 0 and "Access denied" in err, f"exit {rc}: {err.strip()}")
        return "refused: Access denied"

    @check("mariadb table rw")
    def _():
        rc, out, err = mariadb(
            f"CREATE TABLE {TABLE} (id INT AUTO_INCREMENT PRIMARY KEY, employee_id VARCHAR(16) UNIQUE NOT NULL, "
            f"given_name VARCHAR(100), family_name VARCHAR(100), email VARCHAR(255), title VARCHAR(255), "
            f"updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB;"
            f"INSERT INTO {TABLE} (employee_id, given_name, family_name, email, title) VALUES "
            f"('{ROW[0]}', '{ROW[1]}', '{ROW[2]}', '{ROW[3]}', '{ROW[4]}');"
            f"SELECT employee_id, given_name, family_name, email, title FROM {TABLE};")
        expect(rc == 0, f"mariadb exit {rc}: {err.strip()}")
        got = tuple(out.strip().split("\t"))
        expect(got == ROW, f"read back {got}")
        rc, out, err = mariadb(f"DROP TABLE {TABLE}")
        expect(rc == 0, f"DROP TABLE: {err.strip()}")
        return f"CREATE TABLE {TABLE} (InnoDB), INSERT, SELECT (UTF-8 intact), DROP"

passed = sum(results)
print(f"{passed} passed, {len(results) - passed} failed")
sys.exit(0 if passed == len(results) else 1)
