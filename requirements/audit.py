"""`make audit`: pip-audit over the lock, failing on any known vulnerability.

pip-audit asks PyPI's JSON API about each pinned version (`/pypi/NAME/VERSION/json`). Where that
per-version endpoint is not served (some PyPI mirrors and proxies answer 404), pip-audit skips the
package and would report "No known vulnerabilities found". This script does not let such a skip pass
silently: for a skipped pin that is the project's latest release, PyPI's project endpoint
(`/pypi/NAME/json`, whose `vulnerabilities` describe the latest release) answers instead; every pin
that neither source covered is listed as not audited.

Usage: python requirements/audit.py requirements/dev.lock
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from packaging.utils import canonicalize_name as canonical

PROJECT_JSON_URL = "https://pypi.org/pypi/{name}/json"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)


@dataclass(frozen=True)
class Finding:
    name: str
    version: str
    vuln_id: str
    fixed_in: tuple[str, ...]

    def __str__(self) -> str:
        fix = ", ".join(self.fixed_in) or "no fixed version"
        return f"{self.name}=={self.version}: {self.vuln_id} (fixed in: {fix})"


def parse_pins(lock_text: str) -> dict[str, str]:
    """`name==version` lines of a pip-compile lock, names in their canonical form."""
    return {canonical(name): version for name, version in PIN.findall(lock_text)}


def pip_audit_report(lock: Path) -> dict[str, Any]:
    """pip-audit's JSON report; with a fully pinned, hashed lock it needs no pip and no venv."""
    command = ["--disable-pip", "--require-hashes", "--progress-spinner", "off", "--format", "json"]
    result = subprocess.run(
        [sys.executable, "-m", "pip_audit", *command, "--requirement", str(lock)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        sys.exit(f"pip-audit failed (exit {result.returncode}):\n{result.stderr}")


def pip_audit_findings(report: dict[str, Any]) -> tuple[list[Finding], list[str]]:
    """Vulnerabilities pip-audit found, and the names of the pins it skipped."""
    findings = [
        Finding(dep["name"], dep["version"], vuln["id"], tuple(vuln.get("fix_versions", ())))
        for dep in report["dependencies"]
        for vuln in dep.get("vulns", ())
    ]
    skipped = [canonical(dep["name"]) for dep in report["dependencies"] if "skip_reason" in dep]
    return findings, skipped


def latest_release_findings(
    pins: dict[str, str], names: Iterable[str], project_json: Callable[[str], dict[str, Any]]
) -> tuple[list[Finding], list[str]]:
    """Vulnerabilities of the pins that are their project's latest release; the pins left over."""
    names = list(names)
    with ThreadPoolExecutor(max_workers=8) as pool:
        projects = dict(zip(names, pool.map(project_json, names), strict=True))
    findings: list[Finding] = []
    unaudited: list[str] = []
    for name in names:
        project = projects[name]
        if project["info"]["version"] != pins[name]:
            unaudited.append(f"{name}=={pins[name]} (latest {project['info']['version']})")
            continue
        findings += [
            Finding(name, pins[name], vuln["id"], tuple(vuln.get("fixed_in") or ()))
            for vuln in project["vulnerabilities"]
            if not vuln.get("withdrawn")
        ]
    return findings, unaudited


def fetch_project_json(name: str) -> dict[str, Any]:
    response = requests.get(PROJECT_JSON_URL.format(name=name), timeout=30)
    response.raise_for_status()
    return response.json()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.exit(__doc__)
    lock = Path(argv[0])
    pins = parse_pins(lock.read_text())
    findings, skipped = pip_audit_findings(pip_audit_report(lock))
    print(f"pip-audit: {len(pins) - len(skipped)} of {len(pins)} pins audited")
    if skipped:
        more, unaudited = latest_release_findings(pins, skipped, fetch_project_json)
        findings += more
        print(
            f"PyPI has no per-version data for {len(skipped)} pins here; "
            f"{len(skipped) - len(unaudited)} of them are the latest release and were audited "
            "from the project data"
        )
        if unaudited:
            print(f"NOT AUDITED ({len(unaudited)}): " + "; ".join(unaudited))
    for finding in findings:
        print(f"VULNERABLE {finding}")
    if findings:
        print("Upgrade the pin in pyproject.toml (or its parent's) and run `make lock`.")
        return 1
    print("No known vulnerabilities found")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
