#!/usr/bin/python3
# -----------------------------------------------------------------------------------------------
# TEST FIXTURE - this is NOT Kadi4Mat. It imitates the `kadi` command line as operations tooling
# meets it (see docs: /work/shared/reference/kadi-cli.md and Kadi's own CLI sources), so Kadi Ops
# can be tested against a sandbox host without installing Kadi. Python 3 standard library only;
# it talks to PostgreSQL by running /usr/bin/psql with the credentials from the configuration.
#
# Implemented: kadi --version | db upgrade | search init/ls/reindex/remove | files check |
#              utils config.  Messages, exit codes and prompts follow the real CLI.
#
# Knobs for tests (all optional):
#   KADI_DOUBLE_VERSION (env)            the version `kadi --version` prints (default 1.13.0)
#   <config dir>/kadi-double.json        {"version": "...", "headRevision": "...",
#                                         "reindexDelaySeconds": 0.0, "searchUnavailable": false}
#   <config dir>/search-indices.json     the fake Elasticsearch: index name -> alias, docs
# A record/collection/... whose title contains "[index-error]" fails to index during reindex.
# -----------------------------------------------------------------------------------------------
import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
from datetime import datetime, timezone

DEFAULT_VERSION = "1.13.0"
# (Kadi version, alembic head revision of that version), oldest first.
KNOWN_REVISIONS = [
    ("1.11.0", "5e1f4c2b9a70"),
    ("1.12.0", "93c0d8e1b7a2"),
    ("1.13.0", "a1b2c3d4e5f6"),
]
MODELS = ["record", "collection", "template", "group"]
TASK_MERGE_CHUNKS = "kadi.records.merge_chunks"
CONFIRM_PROMPT = (
    "Do you want to resolve all inconsistencies automatically by deleting all"
    " inconsistent database objects and associated data? [y/N]: "
)

# A few of Kadi's built-in defaults, so `utils config` looks like the real, longer output.
DEFAULT_CONFIG = {
    "DEBUG": False,
    "ELASTICSEARCH_HOSTS": "http://localhost:9200",
    "MAIL_NO_REPLY_EMAIL": "",
    "MAX_CONTENT_LENGTH": None,
    "MISC_UPLOADS_PATH": None,
    "PLUGINS": [],
    "PREFERRED_URL_SCHEME": "https",
    "SECRET_KEY": None,
    "SERVER_NAME": None,
    "SESSION_COOKIE_SECURE": True,
    "SMTP_HOST": "localhost",
    "SMTP_PORT": 25,
    "SQLALCHEMY_DATABASE_URI": None,
    "STORAGE_PATH": None,
    "TESTING": False,
    "UPLOAD_USER_QUOTA": 10000000000,
}

PROG = sys.argv[0] if sys.argv and sys.argv[0] else "kadi"
SITE = "/opt/kadi/venv/lib/python3.11/site-packages"


class Exit(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def echo(msg=""):
    sys.stdout.write(f"{msg}\n")
    sys.stdout.flush()


def usage_error(usage, msg):
    sys.stderr.write(f"Usage: {usage}\nTry '{usage.split(' [')[0]} --help' for help.\n\nError: {msg}\n")
    raise Exit(2)


def traceback(frames, last_line):
    """Prints a Python-style traceback to stderr, as an unhandled exception in Kadi would."""
    lines = ["Traceback (most recent call last):", f'  File "{PROG}", line 8, in <module>', "    sys.exit(kadi())"]
    for path, lineno, func, code in frames:
        lines += [f'  File "{SITE}/{path}", line {lineno}, in {func}', f"    {code}"]
    lines.append(last_line)
    sys.stderr.write("\n".join(lines) + "\n")
    raise Exit(1)


# --- configuration ---------------------------------------------------------------------------


def config_dir():
    path = os.environ.get("KADI_CONFIG_FILE")
    return os.path.dirname(os.path.abspath(path)) if path else None


def double_settings():
    d = config_dir()
    if not d:
        return {}
    try:
        with open(os.path.join(d, "kadi-double.json"), encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def kadi_version():
    return os.environ.get("KADI_DOUBLE_VERSION") or double_settings().get("version") or DEFAULT_VERSION


def missing_database_uri():
    traceback(
        [
            ("click/core.py", 1157, "__call__", "return self.main(*args, **kwargs)"),
            ("flask/cli.py", 357, "load_app", "app = locate_app(import_name, name)"),
            ("kadi/app.py", 134, "create_app", "_init_extensions(app)"),
            ("kadi/app.py", 301, "_init_extensions", "db.init_app(app)"),
            ("flask_sqlalchemy/extension.py", 310, "init_app", "raise RuntimeError("),
        ],
        "RuntimeError: Either 'SQLALCHEMY_DATABASE_URI' or 'SQLALCHEMY_BINDS' must be set.",
    )


def load_config():
    """Flask's from_envvar: execute the Python file, keep the upper-case names."""
    path = os.environ.get("KADI_CONFIG_FILE")
    if not path:
        missing_database_uri()
    try:
        with open(path, encoding="utf-8") as f:
            source = f.read()
    except OSError:
        missing_database_uri()
    namespace = {"__file__": path}
    try:
        exec(compile(source, path, "exec"), namespace)  # noqa: S102 - that is how Flask loads it
    except Exception as e:  # a broken config file fails like Kadi does: with a traceback
        traceback([("flask/config.py", 187, "from_pyfile", "exec(compile(config_file.read(), filename, \"exec\"), d.__dict__)")], f"{type(e).__name__}: {e}")
    config = dict(DEFAULT_CONFIG)
    config.update({k: v for k, v in namespace.items() if k.isupper()})
    if not config.get("SQLALCHEMY_DATABASE_URI"):
        missing_database_uri()
    return config


# --- database (through psql) -----------------------------------------------------------------


class Database:
    def __init__(self, uri):
        u = urllib.parse.urlsplit(uri)
        self.host = u.hostname or "localhost"
        self.port = str(u.port or 5432)
        self.user = urllib.parse.unquote(u.username or "")
        self.password = urllib.parse.unquote(u.password or "")
        self.name = u.path.lstrip("/") or self.user
        # The query's other parameters go to libpq as psycopg2 gets them from SQLAlchemy (parse_qsl:
        # one without a value is left out): sslmode, sslrootcert, sslcert, options, ...
        self.params = [(k, v) for k, v in urllib.parse.parse_qsl(u.query) if k not in ("host", "port", "user", "password", "dbname")]

    def _dbname(self):
        """psql's -d: the name, or with parameters a conninfo string of quoted values."""
        if not self.params:
            return self.name
        quote = lambda v: "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return " ".join("%s=%s" % (k, quote(v)) for k, v in [("dbname", self.name), *self.params])

    def run(self, sql):
        env = dict(os.environ, PGPASSWORD=self.password, PGCONNECT_TIMEOUT="10")
        for k in ("PGPASSFILE", "PGSERVICE", "PGOPTIONS"):
            env.pop(k, None)
        argv = ["/usr/bin/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-h", self.host, "-p", self.port, "-U", self.user, "-d", self._dbname(), "-f", "-"]
        r = subprocess.run(argv, input=sql, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            lines = r.stderr.strip().splitlines() or ["unknown error"]
            first = re.sub(r"^psql:<stdin>:\d+: ", "", lines[0])
            # A statement the server rejected, as SQLAlchemy reports psycopg2's error: the message,
            # psql's LINE/caret lines, the statement and the pointer to the docs (exit status 1).
            m = re.match(r"ERROR:\s+((relation|column) .* does not exist)$", first)
            if m:
                kind = "UndefinedTable" if m.group(2) == "relation" else "UndefinedColumn"
                detail = "\n".join(re.sub(r"^psql:<stdin>:\d+: ", "", l) for l in lines[1:])
                traceback(
                    [
                        ("sqlalchemy/engine/base.py", 1969, "_exec_single_context", "self.dialect.do_execute("),
                        ("sqlalchemy/engine/default.py", 922, "do_execute", "cursor.execute(statement, parameters)"),
                    ],
                    f"sqlalchemy.exc.ProgrammingError: (psycopg2.errors.{kind}) {m.group(1)}\n{detail}\n\n"
                    f"[SQL: {' '.join(sql.split())}]\n(Background on this error at: https://sqlalche.me/e/20/f405)",
                )
            traceback(
                [
                    ("sqlalchemy/engine/base.py", 145, "__init__", "self._dbapi_connection = engine.raw_connection()"),
                    ("psycopg2/__init__.py", 122, "connect", "conn = _connect(dsn, connection_factory=connection_factory, **kwasync)"),
                ],
                f"sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) {first}",
            )
        return r.stdout

    def rows(self, select):
        """Runs a SELECT and returns its rows as dicts (one JSON value through psql)."""
        out = self.run(f"SELECT coalesce(json_agg(t), '[]'::json) FROM ({select}) t;").strip()
        return json.loads(out) if out else []

    def scalar(self, select):
        out = self.run(select + ";").strip()
        return out if out != "" else None

    def table_exists(self, name):
        return self.scalar(f"SELECT to_regclass('public.\"{name}\"') IS NOT NULL") == "t"


def literal(value):
    return "'" + str(value).replace("'", "''") + "'"


# --- kadi db ---------------------------------------------------------------------------------


def version_tuple(v):
    return tuple(int(p) if p.isdigit() else 0 for p in re.split(r"[.\-+]", v)[:3])


def revision_chain():
    """Alembic revisions this version knows, oldest first; the last one is head."""
    version = kadi_version()
    chain = [rev for ver, rev in KNOWN_REVISIONS if version_tuple(ver) <= version_tuple(version)]
    if version_tuple(version) > version_tuple(KNOWN_REVISIONS[-1][0]):
        chain.append(hashlib.md5(f"kadi-{version}".encode()).hexdigest()[:12])
    head = double_settings().get("headRevision")
    if head and head not in chain:
        chain.append(head)
    return chain or [KNOWN_REVISIONS[0][1]]


def db_upgrade(config, args):
    no_options(args, "kadi db upgrade [OPTIONS]")
    db = Database(config["SQLALCHEMY_DATABASE_URI"])
    log = lambda m: sys.stderr.write(f"INFO  [alembic.runtime.migration] {m}\n")  # noqa: E731
    log("Context impl PostgresqlImpl.")
    log("Will assume transactional DDL.")
    if not db.table_exists("alembic_version"):
        db.run("CREATE TABLE alembic_version (version_num varchar(32) NOT NULL,"
               " CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));")
    current = db.scalar("SELECT version_num FROM alembic_version LIMIT 1")
    chain = revision_chain()
    if current is not None and current not in chain:
        sys.stderr.write(f"ERROR [flask_migrate] Error: Can't locate revision identified by '{current}'\n")
        raise Exit(1)
    start = chain.index(current) + 1 if current is not None else 0
    previous = current or ""
    for rev in chain[start:]:
        log(f"Running upgrade {previous} -> {rev}, Kadi schema revision {rev}.")
        previous = rev
    if previous != (current or ""):
        db.run(f"DELETE FROM alembic_version; INSERT INTO alembic_version (version_num) VALUES ({literal(previous)});")
    echo("Upgrade completed successfully.")


# --- kadi search (a JSON file stands in for Elasticsearch) -----------------------------------


class Registry:
    """The fake Elasticsearch cluster: {"indices": {name: {"alias": model|None, "docs": n}}}."""

    def __init__(self):
        self.path = os.path.join(config_dir(), "search-indices.json")
        self.lock = open(self.path + ".lock", "a")
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        try:
            with open(self.path, encoding="utf-8") as f:
                self.indices = json.load(f).get("indices", {})
        except (OSError, ValueError):
            self.indices = {}

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"indices": self.indices}, f, indent=2, sort_keys=True)
        os.replace(tmp, self.path)

    def aliased(self, model):
        return next((n for n, i in sorted(self.indices.items()) if i.get("alias") == model), None)

    def create(self, model, alias=False):
        while True:  # names carry microseconds; never reuse one
            name = f"{model}_{datetime.now(timezone.utc).strftime('%Y%m%d%H%M%S%f')}"
            if name not in self.indices:
                break
        self.indices[name] = {"alias": model if alias else None, "docs": 0}
        self.save()
        return name

    def ensure_initial(self, model):
        return self.aliased(model) or self.create(model, alias=True)


def search_unavailable(config):
    if double_settings().get("searchUnavailable"):
        host = config["ELASTICSEARCH_HOSTS"]
        traceback(
            [("elastic_transport/_node/_http_urllib3.py", 202, "perform_request", "raise err from e")],
            f"elastic_transport.ConnectionError: Connection error caused by: NewConnectionError(Failed to establish a new connection: [Errno 111] Connection refused) ({host})",
        )


def require_sure(config, args, verb):
    if "--i-am-sure" in args:
        return
    hosts = config["ELASTICSEARCH_HOSTS"]
    hosts = ", ".join(hosts) if isinstance(hosts, (list, tuple)) else str(hosts)
    echo(f"This might {verb} one or more search indices of instance(s) '{hosts}'."
         " If you are sure you want to do this, use the flag --i-am-sure.")
    raise Exit(1)


def search_init(config, args):
    no_options(args, "kadi search init [OPTIONS]")
    search_unavailable(config)
    reg = Registry()
    for model in MODELS:
        reg.ensure_initial(model)
    echo("Search indices created successfully.")


def search_ls(config, args):
    no_options(args, "kadi search ls [OPTIONS]")
    search_unavailable(config)
    reg = Registry()
    for model in MODELS:
        echo(f"Indices for '{model}':")
        current = reg.aliased(model)
        for name in sorted(n for n in reg.indices if n.startswith(model)):
            echo(f"* {name} (pointed to by alias '{model}')" if name == current else f"* {name}")


def objects_of(db, model):
    """(id, title) of a model's rows ordered by created_at. The sandbox seeds only the record
    table: the other models' tables, when absent beside it, count as empty. Without the record
    table the schema is not there and the query fails as in Kadi (UndefinedTable, exit 1)."""
    table = '"group"' if model == "group" else model
    if model != "record" and not db.table_exists(model) and db.table_exists("record"):
        return []
    return db.rows(f"SELECT id, title FROM {table} ORDER BY created_at")


def search_reindex(config, args):
    usage = "kadi search reindex [OPTIONS]"
    models = list(MODELS)
    rest = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-m", "--model") or a.startswith("--model="):
            value = a.split("=", 1)[1] if "=" in a else (args[i + 1] if i + 1 < len(args) else None)
            if value is None:
                usage_error(usage, f"Option '{a}' requires an argument.")
            if value not in MODELS:
                usage_error(usage, f"Invalid value for '-m' / '--model': '{value}' is not one of {', '.join(repr(m) for m in MODELS)}.")
            models = [value]
            i += 1 if "=" in a else 2
            continue
        rest.append(a)
        i += 1
    flags_only(rest, usage, ["--i-am-sure"])
    require_sure(config, rest, "rebuild")
    search_unavailable(config)
    db = Database(config["SQLALCHEMY_DATABASE_URI"])
    delay = float(double_settings().get("reindexDelaySeconds") or 0)
    reg = Registry()
    for model in models:
        echo(f"Rebuilding index for '{model}'.")
        old = reg.ensure_initial(model)
        new = reg.create(model)
        objects = objects_of(db, model)
        echo(f"Populating new index '{new}' with {len(objects)} {model}(s)...")
        for obj in objects:
            if delay:
                time.sleep(delay)
            if "[index-error]" in (obj.get("title") or ""):
                echo(f"Error indexing {model} with ID '{obj['id']}'.")
            else:
                reg.indices[new]["docs"] += 1
        reg.indices[new]["alias"] = model
        reg.indices.pop(old, None)
        reg.save()
        echo(f"Moved alias '{model}' from old index '{old}' to new index '{new}'.")
    echo("Search indices rebuilt successfully.")


def es_pattern(pattern):
    parts = [re.escape(p).replace(r"\*", ".*") for p in pattern.split(",") if p]
    return re.compile("^(?:" + "|".join(parts) + ")$") if parts else re.compile("^$")


def search_remove(config, args):
    usage = "kadi search remove [OPTIONS] INDEX"
    positional = [a for a in args if not a.startswith("-")]
    flags_only([a for a in args if a.startswith("-")], usage, ["--i-am-sure"])
    if len(positional) != 1:
        usage_error(usage, "Missing argument 'INDEX'." if not positional else f"Got unexpected extra argument ({positional[1]})")
    pattern = positional[0]
    require_sure(config, args, "remove")
    search_unavailable(config)
    reg = Registry()
    rx = es_pattern(pattern)
    # Elasticsearch resolves aliases too: removing "record" deletes the LIVE record index.
    names = sorted(n for n, i in reg.indices.items() if rx.match(n) or (i.get("alias") and rx.match(i["alias"])))
    if not names:
        echo(f"No indices found for '{pattern}'.")
        raise Exit(1)
    for name in names:
        echo(f"Removing index '{name}'...")
        reg.indices.pop(name, None)
        reg.save()
    echo("Search indices removed successfully.")


# --- kadi files ------------------------------------------------------------------------------


def storage_file(config, identifier):
    return os.path.join(config["STORAGE_PATH"] or "", identifier[0:2], identifier[2:4], identifier[4:6], identifier[6:])


def remove_data(config, path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    base = os.path.abspath(config["STORAGE_PATH"] or "/")
    parent = os.path.dirname(path)
    while os.path.abspath(parent).startswith(base + os.sep):
        try:
            os.rmdir(parent)  # only empty directories, like Kadi's local storage
        except OSError:
            break
        parent = os.path.dirname(parent)


def confirm():
    """click.confirm(default=False): EOF aborts, anything unclear asks again."""
    while True:
        sys.stdout.write(CONFIRM_PROMPT)
        sys.stdout.flush()
        line = sys.stdin.readline()
        if line == "":
            echo()
            sys.stderr.write("Aborted!\n")
            raise Exit(1)
        value = line.strip().lower()
        if value in ("y", "yes"):
            return True
        if value in ("n", "no", ""):
            return False
        echo("Error: invalid input")


def files_check(config, args):
    no_options(args, "kadi files check [OPTIONS]")
    db = Database(config["SQLALCHEMY_DATABASE_URI"])
    problems = []  # (kind, id)

    def report(kind, ident, msg):
        problems.append((kind, ident))
        echo(f"[{len(problems)}] {msg}")

    files = db.rows("SELECT id, size, storage_type, state FROM file ORDER BY last_modified DESC")
    echo(f"Checking {len(files)} files...")
    for f in files:
        path = storage_file(config, f["id"])
        where = f"storage type '{f['storage_type']}' and ID '{f['id']}'"
        exists = f["storage_type"] == "local" and os.path.exists(path)
        if f["state"] == "active":
            if not exists:
                report("file", f["id"], f"Found orphaned active file with {where}.")
            elif os.path.getsize(path) != int(f["size"]):
                report("file", f["id"], f"Mismatched size for active file with {where}.")
        elif f["state"] == "deleted" and exists:
            report("file", f["id"], f"Found deleted file with associated data with {where}.")

    uploads = db.rows(
        "SELECT u.id, u.storage_type, u.upload_type, u.state,"
        f" (SELECT t.state FROM task t WHERE t.name = {literal(TASK_MERGE_CHUNKS)}"
        "   AND t.arguments->'args'->>0 = u.id::text LIMIT 1) AS task_state"
        " FROM upload u ORDER BY u.last_modified DESC"
    )
    echo(f"Checking {len(uploads)} uploads...")
    for u in uploads:
        if u["state"] != "processing":
            continue  # active and inactive uploads are handled by Kadi's periodic cleanup
        where = f"storage type '{u['storage_type']}' and ID '{u['id']}'"
        if u["upload_type"] == "direct":
            report("upload", u["id"], f"Found processing direct upload with {where}.")
        elif u["task_state"] != "pending":
            report("upload", u["id"], f"Found processing (chunked) upload with {where} but no pending upload processing task.")

    if not problems:
        echo("Files checked successfully.")
        return
    n = len(problems)
    echo(f"Found {n} {'inconsistency' if n == 1 else 'inconsistencies'}.")
    if not confirm():
        return
    for kind, ident in problems:
        if kind == "file":
            remove_data(config, storage_file(config, ident))
            db.run(f"UPDATE upload SET file_id = NULL WHERE file_id = {literal(ident)}; DELETE FROM file WHERE id = {literal(ident)};")
        else:
            for c in db.rows(f"SELECT index FROM chunk WHERE upload_id = {literal(ident)}"):
                remove_data(config, storage_file(config, f"{ident}-{c['index']}"))
            remove_data(config, storage_file(config, ident))
            db.run(f"DELETE FROM chunk WHERE upload_id = {literal(ident)}; DELETE FROM upload WHERE id = {literal(ident)};")
    echo("Inconsistencies resolved successfully.")


# --- kadi utils ------------------------------------------------------------------------------


def utils_config(config, args):
    no_options(args, "kadi utils config [OPTIONS]")
    for key in sorted(config):
        echo(f"{key}: {config[key]}")


# --- command line ----------------------------------------------------------------------------


def no_options(args, usage):
    flags_only(args, usage, [])


def flags_only(args, usage, allowed):
    for a in args:
        if a in ("--help", "-h"):
            echo(f"Usage: {usage}")
            raise Exit(0)
        if a not in allowed:
            if a.startswith("-"):
                usage_error(usage, f"No such option: {a}")
            usage_error(usage, f"Got unexpected extra argument ({a})")


COMMANDS = {
    "db": {"upgrade": db_upgrade},
    "search": {"init": search_init, "ls": search_ls, "reindex": search_reindex, "remove": search_remove},
    "files": {"check": files_check},
    "utils": {"config": utils_config},
}


def main(argv):
    if not argv or argv[0] in ("--help", "-h"):
        echo("Usage: kadi [OPTIONS] COMMAND [ARGS]...\n\n  The Kadi command line interface.\n\nCommands:")
        for name in COMMANDS:
            echo(f"  {name}")
        return 0
    if argv[0] == "--version":
        echo(kadi_version())
        return 0
    group = COMMANDS.get(argv[0])
    if group is None:
        usage_error("kadi [OPTIONS] COMMAND [ARGS]...", f"No such command '{argv[0]}'.")
    config = load_config()  # like Flask's CLI, every command needs the app and its config
    if len(argv) < 2 or argv[1] in ("--help", "-h"):
        echo(f"Usage: kadi {argv[0]} [OPTIONS] COMMAND [ARGS]...\n\nCommands:")
        for name in group:
            echo(f"  {name}")
        return 0
    command = group.get(argv[1])
    if command is None:
        usage_error(f"kadi {argv[0]} [OPTIONS] COMMAND [ARGS]...", f"No such command '{argv[1]}'.")
    command(config, argv[2:])
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Exit as e:
        sys.exit(e.code)
    except BrokenPipeError:
        sys.exit(1)
