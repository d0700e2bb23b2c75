"""`dg dev` from the repository root serves this project: the project is declared in pyproject.toml
([tool.dg]), so `dg dev` builds its workspace from it (there is no workspace.yaml). This checks that
the code location loads there and exposes the default task set's assets, as a user would see them.

No LLM is called: loading definitions only reads the LLM settings.
"""

from __future__ import annotations

import time

import pytest

from tests.ui.servers import BIN, _answers, dagster_project, free_port, wait_for

pytestmark = [pytest.mark.dagster_daemon]

ASSETS = {"corpus_documents", "biography_extractions", "biography_table"}
ASSET_NODES = "query { assetNodes { assetKey { path } } }"


def test_dg_dev_serves_the_default_assets(tmp_path):
    started = time.monotonic()
    # A port nothing listens on: the LLM is never called, only configured.
    with dagster_project(tmp_path, "http://127.0.0.1:9/v1", "unused", "stopped") as p:
        p.port = free_port()
        p.start("dg-dev", [str(BIN / "dg"), "dev", "-h", "127.0.0.1", "-p", str(p.port)])
        wait_for(lambda: _answers(f"{p.url}/server_info"), 240, "dg dev's /server_info", p)
        up = time.monotonic()

        # The webserver answers before the code location has loaded: poll until its assets are there.
        def asset_keys() -> set[str] | None:
            keys = {"/".join(n["assetKey"]["path"]) for n in p.graphql(ASSET_NODES)["assetNodes"]}
            return keys if keys >= ASSETS else None

        keys = wait_for(asset_keys, 180, f"the asset nodes {sorted(ASSETS)}", p, every_s=2)
        assert keys == ASSETS, f"unexpected assets: {sorted(keys - ASSETS)}"
    print(
        f"\ntiming: dg dev up {up - started:.0f} s, "
        f"assets loaded {time.monotonic() - up:.0f} s later, total {time.monotonic() - started:.0f} s"
    )
