"""Secrets never reach a record or a message (docs/security.md, "Redaction").

Canaries are planted everywhere a run can leak one: its environment, its argv, its
children's argv, shell strings, JSON arguments, the git remote, a URL it reads, the error
text of a failed start and of the exception it dies of. Each is looked for in the spool, the
digest cache and, after `clew ingest`, every table of the store.
"""

from __future__ import annotations

import random
import re
import string
import subprocess

import pytest

from clew.query.cli import ExitStatus
from clew.semconv import attributes as attr
from clew.semconv.redaction import (
    is_secret_value,
    redact_argv,
    redact_command,
    redact_text,
    redact_uri,
)
from clew.semconv import spans as span_names

pytestmark = pytest.mark.integration

ENV_CANARIES = {
    "DB_PASSWORD": "canary-env-password-41",
    "AWS_SECRET_ACCESS_KEY": "canary-env-aws-42",
    "HF_TOKEN": "canary-env-token-43",
    "CLEW_STORE_PASSWORD": "canary-env-store-44",
}
GIT_CANARY = "canary-git-45"

EVERYWHERE = """
import http.server, json, os, subprocess, sys, threading
import fsspec

server = http.server.ThreadingHTTPServer(
    ("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
threading.Thread(target=server.serve_forever, daemon=True).start()
port = server.server_address[1]
fs = fsspec.filesystem("http")
fs.cat_file(f"http://127.0.0.1:{port}/data.txt?X-Amz-Signature=canary-url-sig-50&X-Amz-Date=1")
fs.cat_file(f"http://bob:canary-url-pw-51@127.0.0.1:{port}/data.txt")

subprocess.run([sys.executable, "-c", "pass", "--token", "canary-child-52",
                "--api-key=canary-child-53"], check=True)
os.system("true --password=canary-system-54 && true -H 'Authorization: Bearer canary-system-55'")
subprocess.run("true --secret canary-shell-56 'unbalanced", shell=True, stderr=subprocess.DEVNULL)
subprocess.run(["true", json.dumps({"db": {"password": "canary-json-57"}})])
subprocess.run(["true", "-pcanary-attached-58"])
try:
    subprocess.Popen(["/nonexistent/tool", "--token", "canary-failed-start-59"])
except FileNotFoundError:
    pass
subprocess.run(["false", "--password", "canary-exception-60"], check=True)
"""

ARGV_CANARIES = [
    "--password", "canary-argv-61",
    "--secret-key", "canary-argv-62",
    "-p", "canary-argv-63",
    "--key=canary-argv-64",
    "-H", "Authorization: Bearer canary-argv-65",
    '{"password": "canary-argv-66"}',
    "--data", "https://bob:canary-argv-67@data.example.com/set?X-Amz-Signature=canary-argv-68",
    "--epochs", "3",
]


def _store_text(clew_cli) -> str:
    """Every text a table of the store holds, as JSON: every column but aggregate states
    (hashes and counts, which the CLI cannot show)."""
    listed = clew_cli("sql", "--format", "json", "SHOW TABLES")
    assert listed.code == 0, listed.err
    columns: dict[str, list[str]] = {}
    for table in (row["name"] for row in listed.json()["rows"]):
        described = clew_cli("sql", "--format", "json", f"DESCRIBE TABLE {table}")
        assert described.code == 0, described.err
        for row in described.json()["rows"]:
            if "AggregateFunction" not in row["type"]:
                columns.setdefault(table, []).append(f"`{row['name']}`")
    assert "otel_traces" in columns, columns
    dumps = []
    for table, names in columns.items():
        dumped = clew_cli("sql", "--format", "json", f"SELECT {', '.join(names)} FROM {table}")
        assert dumped.code == 0, dumped.err
        dumps.append(dumped.out)
    return "\n".join(dumps)


def test_no_canary_reaches_the_spool_the_digest_cache_or_the_store(
    run_instrumented, spool, workdir, clew_home, clew_cli
):
    """A run that holds secrets in every place it can records none of them, and keeps the
    rest of what it records: the arguments around the secrets, the URL's host, the error."""
    subprocess.run(["git", "init", "-q"], cwd=workdir, check=True)
    subprocess.run(["git", "remote", "add", "origin",
                    f"https://alice:{GIT_CANARY}@git.example.com/team/model.git"],
                   cwd=workdir, check=True)
    (workdir / "data.txt").write_text("rows\n")

    result = run_instrumented(EVERYWHERE, *ARGV_CANARIES, env=ENV_CANARIES)

    assert result.returncode == 1 and "CalledProcessError" in result.stderr, result.stderr
    run = spool.run()
    assert run.command[2:] == [
        "--password", "REDACTED", "--secret-key", "REDACTED", "-p", "REDACTED",
        "--key=REDACTED", "-H", "Authorization: REDACTED", '{"password": "REDACTED"}',
        "--data", "https://REDACTED@data.example.com/set?X-Amz-Signature=REDACTED",
        "--epochs", "3",
    ]
    commands = [e.command for e in run.execs]
    assert ["/bin/sh", "-c", "true --password=REDACTED && true -H 'Authorization: REDACTED'"] \
        in commands
    assert ["true", '{"db": {"password": "REDACTED"}}'] in commands
    assert ["true", "-pREDACTED"] in commands
    root = next(s for s in spool.spans() if s.name == span_names.SPAN_RUN)
    assert root.attributes[attr.VCS_REPOSITORY_URL_FULL] == "https://git.example.com/team/model.git"
    assert "'--password', 'REDACTED'" in root.attributes[attr.PROVENANCE_EXCEPTION_MESSAGE]
    assert any(a.uri.startswith("http://127.0.0.1:") and "X-Amz-Signature=REDACTED" in a.uri
               for a in run.accesses), [a.uri for a in run.accesses]

    ingested = clew_cli("ingest")
    assert ingested.code == 0, ingested.err
    places = {
        "spool": spool.text(),
        "digest cache": "".join(p.read_text(errors="replace")
                                for p in (clew_home / "cache").rglob("*") if p.is_file()),
        "store": _store_text(clew_cli),
    }
    assert "REDACTED" in places["store"]
    for place, text in places.items():
        assert _canaries(text) == [], f"canaries in the {place}"


def _canaries(text: str) -> list[str]:
    return sorted(set(re.findall(r"canary-[a-z-]+-[0-9]+", text)))


def test_a_url_clew_cannot_parse_leaves_the_run_recorded(run_instrumented, run_plain, spool):
    """A non-numeric port, a quote in the userinfo, an unclosed IPv6 bracket: the program runs
    as it would without clew, its stderr is its own, and the run is recorded."""
    args = ["https://host:notaport/data", 'https://us"er:canary-quote-70@host/x',
            "http://[::1/x"]
    script = "import sys; print(sys.argv[1:])"

    result = run_instrumented(script, *args)

    plain = run_plain(script, *args)
    assert (result.returncode, result.stdout, result.stderr) == (0, plain.stdout, "")
    run = spool.run()
    assert run.status == "ok"
    assert run.command[2:] == [args[0], "https://REDACTED@host/x", args[2]]
    assert _canaries(spool.text()) == []


def test_short_options_keep_ports_and_hide_passwords(run_instrumented, spool):
    """`-p` is a password for mysql or sshpass and a port for ssh or docker: a port is kept,
    anything else is hidden; a single-dash long option (`-project`) is no `-p`, and programs
    whose `-p` is a flag (`mkdir -p`, `cp -p`) keep the word after it."""
    result = run_instrumented(
        """
        import subprocess
        for argv in (["true", "-p", "2222", "host"], ["true", "-p", "8080:80", "image"],
                     ["true", "-p", "canary-short-71"], ["true", "-uroot", "-pcanary-short-72"],
                     ["true", "-project", "vision"], ["mkdir", "-p", "out/a"]):
            subprocess.run(argv)
        subprocess.run("mkdir -p out/b && true -p canary-short-73; cp -p out/b out/c", shell=True)
        """
    )

    assert result.returncode == 0, result.stderr
    assert sorted(e.command for e in spool.run().execs) == sorted([
        ["true", "-p", "2222", "host"], ["true", "-p", "8080:80", "image"],
        ["true", "-p", "REDACTED"], ["true", "-uroot", "-pREDACTED"],
        ["true", "-project", "vision"], ["mkdir", "-p", "out/a"],
        ["/bin/sh", "-c", "mkdir -p out/b && true -p REDACTED; cp -p out/b out/c"],
    ])


def test_shell_lines_keep_their_form(run_instrumented, spool):
    """A shell line is recorded as written, secrets replaced; one whose secret was quoted or
    escaped is recorded as its words; one that shlex cannot split by the text rules."""
    result = run_instrumented(
        r"""
        import os, subprocess
        os.system("true --token=canary-line-73 | cat > /dev/null; true --db-host h")
        subprocess.run("true --password 'two words canary-line-74' --epochs 3", shell=True)
        subprocess.run("true --password two\\ canary-line-75 --epochs 3", shell=True)
        subprocess.run("true --auth canary-line-76 'unclosed", shell=True,
                       stderr=subprocess.DEVNULL)
        """
    )

    assert result.returncode == 0, result.stderr
    lines = sorted(e.command[2] for e in spool.run().execs if e.command[:2] == ["/bin/sh", "-c"])
    assert lines == sorted([
        "true --token=REDACTED | cat > /dev/null; true --db-host h",
        "true --password 'REDACTED' --epochs 3",
        "true --password REDACTED --epochs 3",
        "true --auth REDACTED 'unclosed",
    ])
    assert _canaries(spool.text()) == []


def test_clew_redact_adds_names_and_clew_redact_keep_keeps_them(run_instrumented, spool):
    """CLEW_REDACT hides more names (and a short option); CLEW_REDACT_KEEP records a value
    although its name looks secret."""
    result = run_instrumented(
        """
        import subprocess
        subprocess.run(["true", "--db-url", "canary-conf-77", "-a", "canary-conf-78",
                        "--sort-key", "name", "-p", "database", "--token", "canary-conf-79"])
        """,
        env={"CLEW_REDACT": "db-url, -a", "CLEW_REDACT_KEEP": "sort-key,-p"},
    )

    assert result.returncode == 0, result.stderr
    (child,) = spool.run().execs
    assert child.command == ["true", "--db-url", "REDACTED", "-a", "REDACTED", "--sort-key",
                             "name", "-p", "database", "--token", "REDACTED"]


@pytest.mark.parametrize("url", [
    "chdb://user:canary-store-80@/x",
    "clickhouse://user:canary-store-81@h/db",
    "http://alice@ch.example.com:8123/db?password=canary-store-82",
    "http://alice%3Acanary-store-83@ch.example.com:8123/db",
])
def test_a_store_url_with_a_password_is_refused_without_showing_it(clew_cli, monkeypatch, url):
    """Whatever its scheme and wherever the password sits, the URL is refused with one line
    saying where the password goes, and the password is not on it."""
    for args in (["--store", url, "runs"], ["runs"]):
        with monkeypatch.context() as patch:
            if not args[0].startswith("--"):
                patch.setenv("CLEW_STORE", url)
            done = clew_cli(*args)
        assert done.code == ExitStatus.USAGE and done.out == ""
        assert done.err.count("\n") == 1 and "CLEW_STORE_PASSWORD" in done.err, done.err
        assert "canary-store" not in done.err


def test_bad_urls_are_reported_redacted(clew_cli):
    """A store URL that is no URL, and an OTLP endpoint that is not http(s): one line each,
    naming the URL without its credentials."""
    store = clew_cli("--store", "http://alice@ch.example.com:port/db?token=canary-msg-84", "runs")
    assert store.code == ExitStatus.USAGE and "canary-msg-84" not in store.err
    assert "http://REDACTED@ch.example.com:port/db?token=REDACTED" in store.err, store.err

    replay = clew_cli("replay", "0" * 32, "--endpoint", "grpc://bob:canary-msg-85@collector:4317")
    assert replay.code == ExitStatus.USAGE and "canary-msg-85" not in replay.err
    assert "grpc://REDACTED@collector:4317" in replay.err, replay.err


def test_clew_doctor_shows_the_store_url_redacted(clew_cli, monkeypatch):
    """`clew doctor` shows CLEW_STORE as set, without a password someone put in it."""
    monkeypatch.setenv("CLEW_STORE", "http://alice:canary-doctor-86@ch.example.com:8123/db")
    done = clew_cli("doctor", "--format", "json")
    assert done.json()["store"] == "http://REDACTED@ch.example.com:8123/db"
    assert _canaries(done.out + done.err) == []


def test_redaction_never_raises():
    """Whatever a program's argv or a URL holds, redaction returns text and never raises:
    it runs in every program's start-up and on every subprocess."""
    rng = random.Random(7)
    alphabet = string.printable + "\"'@:/?#=&-[]{}\\é\udcff"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        for redact in (redact_text, redact_command, redact_uri):
            assert isinstance(redact(text), str)
        assert all(isinstance(a, str) for a in redact_argv(["sh", "-c", text, *text.split()]))
    assert redact_argv([b"--password", b"\xff-bytes"]) == ["--password", "REDACTED"]


@pytest.mark.parametrize("value", [
    "postgres://alice:pw@db/x", "Bearer abc.def", "host=h password=pw",
    "AKIAIOSFODNN7EXAMPLE", "ghp_" + "a1" * 18, "hf_" + "Q" * 34, "sk-" + "x9" * 12,
    "xoxb-1234567890-abcdef", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.sig",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIE...",
])
def test_a_value_with_a_credentials_form_is_secret_on_its_own(value):
    assert is_secret_value(value)


@pytest.mark.parametrize("value", [
    "adam", "0.01", "https://example.com/data.csv", "s3://bucket/key.parquet", "cosine",
    "bert-base-uncased", "/data/train.csv", "sk-learn", "the task",
])
def test_an_ordinary_value_is_no_secret(value):
    assert not is_secret_value(value)
