"""GraphQL-over-HTTP conformance: the graphql-http audit suite against a live server.

The audit (npm package graphql-http 1.x) is installed into build/graphql-http by
``make test`` (or here, on first use); node runs it against the real uvicorn.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.server import LiveServer

ROOT = Path(__file__).resolve().parents[2]
PREFIX = ROOT / "build" / "graphql-http"
PACKAGES = ("graphql-http@1", "graphql@16")
SCRIPT = Path(__file__).with_name("graphql_http_audit.cjs")
# The SHOULDs plain strawberry misses: application/graphql-response+json media type and codes.
RESPONSE_MEDIA_TYPE_AUDITS = {
    "22EB",
    "34A2",
    "865D",
    "556A",
    "D586",
    "51FE",
    "74FF",
    "5E5B",
    "86EE",
}


@pytest.fixture(scope="session")
def audit_modules() -> Path:
    modules = PREFIX / "node_modules"
    if not (modules / "graphql-http" / "package.json").exists():
        npm = shutil.which("npm")
        assert npm is not None, "npm is needed to install the graphql-http audit"
        PREFIX.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--no-save", "--no-package-lock", "--no-audit", "--no-fund"]
            + ["--prefix", str(PREFIX), *PACKAGES],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return modules


def test_graphql_over_http_audit_passes(live_server: LiveServer, audit_modules: Path) -> None:
    node = shutil.which("node")
    assert node is not None, "node is needed to run the graphql-http audit"
    run = subprocess.run(
        [node, str(SCRIPT), f"{live_server.url}/graphql"],
        env={**os.environ, "NODE_PATH": str(audit_modules)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout)
    required = [r for r in results if r["name"].split()[0] in ("MUST", "SHOULD")]
    failures = [r for r in required if r["status"] != "ok"]
    assert failures == [], json.dumps(failures, indent=2, ensure_ascii=False)
    passed = {r["id"] for r in required}
    assert passed >= RESPONSE_MEDIA_TYPE_AUDITS
    assert len(required) >= 30
