"""The git state of the code a run used: commit, branch, remote and uncommitted changes."""

from __future__ import annotations

import os
import subprocess

import blake3

from clew.semconv import attributes as attr

from ._redact import redact_uri

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


def _changed_paths(status: str) -> list[str]:
    """Paths from `git status --porcelain -z`, renames giving their new path."""
    paths: list[str] = []
    entries = iter(status.split("\0"))
    for entry in entries:
        if len(entry) < 4:
            continue
        code, path = entry[:2], entry[3:]
        paths.append(path)
        if "R" in code or "C" in code:
            next(entries, None)  # the rename's source path follows as its own entry
    return sorted(set(paths))


def git_attributes(cwd: str) -> dict:
    """Attributes describing the git work tree holding `cwd`; empty when there is none.

    The diff digest covers `git diff HEAD` and the content of untracked files, so two runs
    with the same commit and the same digest ran the same code.
    """
    root = _git(cwd, "rev-parse", "--show-toplevel")
    if root is None:
        return {}
    root = root.strip()
    attributes: dict = {}
    head = _git(root, "rev-parse", "--verify", "-q", "HEAD")
    if head:
        attributes[attr.VCS_REF_HEAD_REVISION] = head.strip()
    branch = _git(root, "symbolic-ref", "--short", "-q", "HEAD")
    if branch:
        attributes[attr.VCS_REF_HEAD_NAME] = branch.strip()
    remote = _git(root, "config", "--get", "remote.origin.url")
    if remote and remote.strip():
        attributes[attr.VCS_REPOSITORY_URL_FULL] = redact_uri(remote.strip())
    status = _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all")
    if status is None:
        return attributes
    changed = _changed_paths(status)
    attributes[attr.PROVENANCE_VCS_DIRTY] = bool(changed)
    if changed:
        hasher = blake3.blake3()
        diff = _git(root, "diff", "HEAD", "--binary", "--no-ext-diff") if head else ""
        hasher.update((diff or "").encode("utf-8", "surrogateescape"))
        untracked = [e[3:] for e in status.split("\0") if e.startswith("?? ")]
        for path in sorted(untracked):
            hasher.update(f"\0untracked {path}\0".encode("utf-8", "surrogateescape"))
            try:
                with open(os.path.join(root, path), "rb") as handle:
                    hasher.update(handle.read())
            except OSError:
                pass
        attributes[attr.PROVENANCE_VCS_DIFF_DIGEST] = "blake3:" + hasher.hexdigest()
        attributes[attr.PROVENANCE_VCS_DIFF_FILES] = changed
    return attributes
