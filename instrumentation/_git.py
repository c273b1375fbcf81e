"""The git state of the code a run used: commit, branch, remote and uncommitted changes."""

from __future__ import annotations

import os
import subprocess

import blake3

from clew.semconv import attributes as attr
from clew.semconv.digests import blake3_id
from clew.semconv.redaction import redact_uri

from ._paths import git_work_tree

_TIMEOUT = 10.0


def _git(root: str, *args: str) -> str | None:
    try:
        completed = subprocess.run(
            ["git", "-C", root, *args],
            capture_output=True,
            timeout=_TIMEOUT,
            check=False,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if completed.returncode != 0:
        return None
    return completed.stdout.decode("utf-8", "surrogateescape")


def _parse_status(status: str) -> tuple[str | None, str | None, list[str], list[str]]:
    """Commit, branch, changed paths and untracked paths from `git status --porcelain=v2
    --branch -z` (one git process gives all of it)."""
    commit = branch = None
    changed: list[str] = []
    untracked: list[str] = []
    entries = iter(status.split("\0"))
    for entry in entries:
        if entry.startswith("# branch.oid "):
            value = entry[len("# branch.oid ") :]
            commit = None if value == "(initial)" else value
        elif entry.startswith("# branch.head "):
            value = entry[len("# branch.head ") :]
            branch = None if value == "(detached)" else value
        elif entry.startswith("1 "):
            changed.append(entry.split(" ", 8)[8])
        elif entry.startswith("2 "):
            changed.append(entry.split(" ", 9)[9])
            next(entries, None)  # a rename's or copy's original path follows on its own
        elif entry.startswith("u "):
            changed.append(entry.split(" ", 10)[10])
        elif entry.startswith("? "):
            untracked.append(entry[2:])
    return commit, branch, sorted(set(changed + untracked)), sorted(untracked)


def git_attributes(cwd: str) -> dict:
    """Attributes describing the git work tree holding `cwd`; empty when there is none.

    The diff digest covers `git diff HEAD` and the content of untracked files, so two runs
    with the same commit and the same digest ran the same code.
    """
    root = git_work_tree(cwd)
    if root is None:
        if "GIT_DIR" not in os.environ:
            # No work tree above `cwd`: git would answer "not a git repository" (or, inside a
            # bare repository, that this needs a work tree). Not starting it saves a fork
            # and exec of git, ~1 ms of CPU in this process and more in git.
            return {}
        root = cwd
    status = _git(root, "status", "--porcelain=v2", "--branch", "-z", "--untracked-files=all")
    if status is None:
        return {}
    commit, branch, changed, untracked = _parse_status(status)
    attributes: dict = {attr.PROVENANCE_VCS_DIRTY: bool(changed)}
    if commit:
        attributes[attr.VCS_REF_HEAD_REVISION] = commit
    if branch:
        attributes[attr.VCS_REF_HEAD_NAME] = branch
    remote = _git(root, "config", "--get", "remote.origin.url")
    if remote and remote.strip():
        attributes[attr.VCS_REPOSITORY_URL_FULL] = redact_uri(remote.strip())
    if changed:
        hasher = blake3.blake3()
        diff = _git(root, "diff", "HEAD", "--binary", "--no-ext-diff") if commit else ""
        hasher.update((diff or "").encode("utf-8", "surrogateescape"))
        for path in untracked:
            hasher.update(f"\0untracked {path}\0".encode("utf-8", "surrogateescape"))
            try:
                with open(os.path.join(root, path), "rb") as handle:
                    hasher.update(handle.read())
            except OSError:
                pass
        attributes[attr.PROVENANCE_VCS_DIFF_DIGEST] = blake3_id(hasher.hexdigest())
        attributes[attr.PROVENANCE_VCS_DIFF_FILES] = changed
    return attributes
